//! One-pass lenient members for the usage readers' hot path.
//!
//! Each type here reads any JSON value and keeps it only when it has the
//! expected shape, so a member of an unexpected type is skipped within the
//! one pass over a stream event. The `&RawValue` + [`super::json::decode`]
//! pattern gives the same tolerance but lexes a member again for every level
//! it descends, which made a chunk's choice be read four times.
//!
//! The tolerance differs in one corner: an object that repeats a key fails
//! the object being read through these types as a whole (serde's derive
//! refuses duplicates), where the raw pattern skipped only the repeated
//! member's parent.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A string member, or `None` for any other value.
#[derive(Default)]
pub(crate) struct Str<'a>(pub(crate) Option<Cow<'a, str>>);

/// A count, read as [`super::json::count`] reads one (a non-negative number),
/// or `None` for any other value.
#[derive(Default)]
pub(crate) struct Count(pub(crate) Option<u64>);

/// Whether a member is an array with at least one item.
#[derive(Default)]
pub(crate) struct Filled(pub(crate) bool);

/// An object member read as `T`, or `None` for any other value.
pub(crate) struct Obj<T>(pub(crate) Option<T>);

/// An array member's items, each read as `T` (itself lenient); empty for any other value.
pub(crate) struct Items<T>(pub(crate) Vec<T>);

/// Message content: a string, or the concatenated `text` of an array of
/// parts (parts without one add nothing); `None` for any other value or an
/// empty array.
#[derive(Default)]
pub(crate) struct Content<'a>(pub(crate) Option<Cow<'a, str>>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items(Vec::new())
    }
}

/// What one lenient type keeps of a JSON value; every other value reads as `Default`.
trait Shape<'de>: Default {
    fn string(_: Cow<'de, str>) -> Self {
        Self::default()
    }
    fn count(_: u64) -> Self {
        Self::default()
    }
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::default())
    }
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Self::default())
    }
}

/// Reads any value into the shape `S`.
struct Any<S>(PhantomData<S>);

impl<'de, S: Shape<'de>> Visitor<'de> for Any<S> {
    type Value = S;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<S, E> {
        Ok(S::default())
    }
    fn visit_i64<E>(self, n: i64) -> Result<S, E> {
        Ok(u64::try_from(n).map_or_else(|_| S::default(), S::count))
    }
    fn visit_u64<E>(self, n: u64) -> Result<S, E> {
        Ok(S::count(n))
    }
    fn visit_f64<E>(self, f: f64) -> Result<S, E> {
        // As `json::count` reads a number: a non-negative float counts too.
        Ok(if f.is_finite() && f >= 0.0 { S::count(f as u64) } else { S::default() })
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<S, E> {
        Ok(S::string(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<S, E> {
        Ok(S::string(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<S, E> {
        Ok(S::string(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<S, E> {
        Ok(S::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<S, A::Error> {
        S::seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<S, A::Error> {
        S::map(map)
    }
}

fn any<'de, S: Shape<'de>, D: Deserializer<'de>>(d: D) -> Result<S, D::Error> {
    d.deserialize_any(Any(PhantomData))
}

impl<'de: 'a, 'a> Shape<'de> for Str<'a> {
    fn string(s: Cow<'de, str>) -> Self {
        Str(Some(s))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        any(d)
    }
}

impl Shape<'_> for Count {
    fn count(n: u64) -> Self {
        Count(Some(n))
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        any(d)
    }
}

impl<'de> Shape<'de> for Filled {
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut filled = false;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            filled = true;
        }
        Ok(Filled(filled))
    }
}

impl<'de> Deserialize<'de> for Filled {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        any(d)
    }
}

impl<'de, T: Deserialize<'de>> Shape<'de> for Obj<T> {
    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        any(d)
    }
}

impl<'de, T: Deserialize<'de>> Shape<'de> for Items<T> {
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<T>()? {
            items.push(item);
        }
        Ok(Items(items))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        any(d)
    }
}

/// A content part: only its `text` is read.
#[derive(serde::Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Str<'a>,
}

impl<'de: 'a, 'a> Shape<'de> for Content<'a> {
    fn string(s: Cow<'de, str>) -> Self {
        Content(Some(s))
    }
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut text: Option<Cow<'a, str>> = None;
        while let Some(Obj(part)) = seq.next_element::<Obj<Part<'de>>>()? {
            let part = part.and_then(|p| p.text.0).unwrap_or_default();
            match &mut text {
                None => text = Some(part),
                Some(t) => t.to_mut().push_str(&part),
            }
        }
        Ok(Content(text))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        any(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        s: Str<'a>,
        #[serde(default)]
        n: Count,
        #[serde(default)]
        f: Filled,
        #[serde(borrow, default)]
        c: Content<'a>,
        #[serde(borrow, default)]
        items: Items<Obj<Probe<'a>>>,
    }

    fn probe(json: &str) -> Probe<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_member_takes_any_value_and_keeps_only_its_shape() {
        for other in ["null", "true", "-1", "-1.5", "{\"a\":[1,{}]}", "[[],{}]", "\"x\""] {
            let json = format!(r#"{{"s":{other},"n":{other},"f":{other},"items":{other}}}"#);
            let p = probe(&json);
            assert_eq!(p.s.0.as_deref(), (other == "\"x\"").then_some("x"), "{other}");
            assert_eq!(p.n.0, None, "{other}");
            assert_eq!(p.f.0, other.starts_with('['), "{other}");
            // An array's items that are not objects are kept as `None`.
            assert_eq!(p.items.0.len(), if other == "[[],{}]" { 2 } else { 0 }, "{other}");
        }
        assert!(!probe(r#"{"f":[]}"#).f.0);
    }

    #[test]
    fn a_count_is_what_json_count_reads() {
        for n in ["7", "12.0", "12.5", "-1", "-1.5", "1e3", "\"12\"", "null", "[1]"] {
            let raw: Box<serde_json::value::RawValue> = serde_json::from_str(n).unwrap();
            let json = format!(r#"{{"n":{n}}}"#);
            assert_eq!(probe(&json).n.0, super::super::json::count(Some(&raw)), "{n}");
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        assert!(matches!(probe(r#"{"s":"plain"}"#).s.0, Some(Cow::Borrowed("plain"))));
        assert_eq!(probe(r#"{"s":"a\nb"}"#).s.0.as_deref(), Some("a\nb"));
    }

    #[test]
    fn content_is_a_string_or_the_text_of_its_parts() {
        let p = probe(r#"{"c":[{"type":"text","text":"a"},{"type":"image"},7,{"text":"b"}]}"#);
        assert_eq!(p.c.0.as_deref(), Some("ab"));
        assert_eq!(probe(r#"{"c":"s"}"#).c.0.as_deref(), Some("s"));
        assert_eq!(probe(r#"{"c":[]}"#).c.0, None);
        assert_eq!(probe(r#"{"c":[{"type":"image"}]}"#).c.0.as_deref(), Some(""));
        assert_eq!(probe(r#"{"c":5}"#).c.0, None);
    }

    #[test]
    fn nested_objects_are_read_in_the_same_pass() {
        let p = probe(r#"{"items":[{"s":"a","n":1},"junk",{"items":[{"s":"deep"}]}]}"#);
        let items: Vec<_> = p.items.0.iter().map(|o| o.0.as_ref().map(|p| p.s.0.as_deref())).collect();
        assert_eq!(items, vec![Some(Some("a")), None, Some(None)]);
        let deep = p.items.0[2].0.as_ref().unwrap();
        assert_eq!(deep.items.0[0].0.as_ref().unwrap().s.0.as_deref(), Some("deep"));
    }
}

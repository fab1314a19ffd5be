//! One pass over an Anthropic Messages body that finds every `cache_control`
//! value where Anthropic reads one, borrowed from the input (no copies).
//!
//! Where breakpoints are read (Anthropic prompt-caching doc, "What can be cached"):
//! - `tools[]`: each tool definition;
//! - `system[]`: each block, when `system` is an array (a string cannot carry one);
//! - `messages[].content[]`: each block, when `content` is an array, including
//!   `image`, `document`, `tool_use` and `tool_result` blocks;
//! - blocks nested in a block's `content` array (`tool_result`, `search_result`)
//!   and in a document's `source.content` array: the SDK types give them
//!   `cache_control` too, so they are breakpoints for the TTL order as well;
//! - the top-level `cache_control` (automatic caching), which Anthropic places
//!   on the last cacheable block, so it comes last in prefix order.
//!
//! Nothing else is walked: `tool_use.input`, `input_schema`, `metadata` and
//! the like are user data, where a key named `cache_control` means nothing.
//!
//! The result is in prefix order (`tools`, `system`, `messages`, automatic),
//! whatever the key order in the JSON; within a block, breakpoints nested in
//! it come before the block's own, since the block ends after its content.
//! A key the walk reads that appears twice in one object is an error: which
//! copy the provider would honour is unknown, so the body is left alone.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The part of the prompt prefix a breakpoint belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Tools,
    System,
    Messages,
    /// The top-level `cache_control` (automatic caching).
    Automatic,
}

/// A `cache_control` value as it appears in the body.
#[derive(Clone, Copy, Debug)]
pub struct Found<'de> {
    pub section: Section,
    pub raw: &'de RawValue,
}

/// Every `cache_control` value of a Messages body, in prefix order.
/// Fails when the body is not a JSON object (or not JSON at all).
pub fn find(body: &str) -> Result<Vec<Found<'_>>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(body);
    let found = de.deserialize_map(TopVisitor)?;
    de.end()?;
    Ok(found)
}

/// The object keys the walk reads; every other key is skipped unparsed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    CacheControl,
    Content,
    Source,
    Tools,
    System,
    Messages,
    Other,
}

struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Field, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldSeed {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    // Escaped keys arrive here unescaped, so `"cache\u005fcontrol"` is found too.
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
        Ok(match key {
            "cache_control" => Field::CacheControl,
            "content" => Field::Content,
            "source" => Field::Source,
            "tools" => Field::Tools,
            "system" => Field::System,
            "messages" => Field::Messages,
            _ => Field::Other,
        })
    }
}

/// Marks `field` as seen in the current object; a second sighting is an error.
fn first_sighting<E: de::Error>(seen: &mut Vec<Field>, field: Field) -> Result<(), E> {
    if seen.contains(&field) {
        return Err(E::custom("duplicate key in a cache_control position"));
    }
    seen.push(field);
    Ok(())
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Vec<Found<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Messages request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut tools = Vec::new();
        let mut system = Vec::new();
        let mut messages = Vec::new();
        let mut automatic = None;
        let mut seen = Vec::new();
        while let Some(field) = map.next_key_seed(FieldSeed)? {
            let (shape, section, out) = match field {
                Field::Tools => (Shape::Tools, Section::Tools, &mut tools),
                Field::System => (Shape::Blocks, Section::System, &mut system),
                Field::Messages => (Shape::Messages, Section::Messages, &mut messages),
                Field::CacheControl => {
                    first_sighting(&mut seen, field)?;
                    automatic = Some(map.next_value::<&'de RawValue>()?);
                    continue;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            first_sighting(&mut seen, field)?;
            map.next_value_seed(Node { shape, section, out })?;
        }
        let mut found = tools;
        found.append(&mut system);
        found.append(&mut messages);
        if let Some(raw) = automatic {
            found.push(Found { section: Section::Automatic, raw });
        }
        Ok(found)
    }
}

/// What the value being visited is expected to be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `tools`: an array of tool definitions.
    Tools,
    /// One tool definition: only its own `cache_control` counts.
    Tool,
    /// `messages`: an array of messages.
    Messages,
    /// One message: its `content`.
    Message,
    /// An array of content blocks (`system`, a message's or a block's `content`).
    Blocks,
    /// One content block: its `cache_control`, nested `content`, `source`.
    Block,
    /// A document block's `source`: its `content`.
    Source,
}

/// Visits one value of the expected shape, appending what it finds to `out`.
/// A value of another type (a string `system` or `content`, a scalar where
/// Anthropic wants an object) holds no breakpoint and is skipped.
struct Node<'a, 'de> {
    shape: Shape,
    section: Section,
    out: &'a mut Vec<Found<'de>>,
}

impl<'de> DeserializeSeed<'de> for Node<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let element = match self.shape {
            Shape::Tools => Shape::Tool,
            Shape::Messages => Shape::Message,
            Shape::Blocks => Shape::Block,
            Shape::Tool | Shape::Message | Shape::Block | Shape::Source => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(());
            }
        };
        while seq.next_element_seed(Node { shape: element, section: self.section, out: &mut *self.out })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut own = None;
        let mut seen = Vec::new();
        while let Some(field) = map.next_key_seed(FieldSeed)? {
            let nested = match (self.shape, field) {
                (Shape::Tool | Shape::Block, Field::CacheControl) => {
                    first_sighting(&mut seen, field)?;
                    own = Some(map.next_value::<&'de RawValue>()?);
                    continue;
                }
                (Shape::Message | Shape::Block | Shape::Source, Field::Content) => Shape::Blocks,
                (Shape::Block, Field::Source) => Shape::Source,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            first_sighting(&mut seen, field)?;
            map.next_value_seed(Node { shape: nested, section: self.section, out: &mut *self.out })?;
        }
        if let Some(raw) = own {
            self.out.push(Found { section: self.section, raw });
        }
        Ok(())
    }
}

/// A `cache_control` value, as far as the TTL upgrade cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `{"type": "ephemeral"}` without a `ttl`: 5 minutes now, 1 hour after the upgrade.
    Upgradable,
    /// `"ttl": "1h"`.
    OneHour,
    /// Any other `ttl` (`"5m"`, `null`, a value Anthropic does not know):
    /// treated as a short TTL, which is the cautious reading for the order rule.
    Short,
    /// Not an ephemeral breakpoint (another `type`, no `type`, not an object).
    NotEphemeral,
}

/// Classifies a `cache_control` value; `None` for `null` (no breakpoint).
pub fn classify(raw: &RawValue) -> Result<Option<Kind>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.deserialize_any(KindVisitor)
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Option<Kind>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a cache_control value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(Kind::NotEphemeral))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(Kind::NotEphemeral))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some(Kind::NotEphemeral))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some(Kind::NotEphemeral))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some(Kind::NotEphemeral))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some(Kind::NotEphemeral))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kind_type: Option<&'de RawValue> = None;
        let mut ttl: Option<&'de RawValue> = None;
        while let Some(key) = map.next_key::<String>()? {
            let slot = match key.as_ref() {
                "type" => &mut kind_type,
                "ttl" => &mut ttl,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom("duplicate key in cache_control"));
            }
            *slot = Some(map.next_value::<&'de RawValue>()?);
        }
        if !kind_type.is_some_and(|t| is_string(t, "ephemeral")) {
            return Ok(Some(Kind::NotEphemeral));
        }
        Ok(Some(match ttl {
            None => Kind::Upgradable,
            Some(ttl) if is_string(ttl, "1h") => Kind::OneHour,
            Some(_) => Kind::Short,
        }))
    }
}

/// Whether a raw JSON value is the string `expected` (escapes decoded).
fn is_string(raw: &RawValue, expected: &str) -> bool {
    raw.get().starts_with('"') && serde_json::from_str::<String>(raw.get()).is_ok_and(|s| s == expected)
}

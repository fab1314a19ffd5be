//! The price catalog: pydantic's genai-prices data in its own published JSON
//! schema (`data_slim.json`: a list of providers, each with `models`), which
//! is what `scripts/prices.py` generates into `catalog.json`, what the filter
//! embeds, and what `pricing.source` may serve at run time.
//!
//! Of each model it reads `id`, `match` (the catalog's rule language:
//! `equals`, `starts_with`, `ends_with`, `contains`, `regex`, `or`, `and`,
//! compared lower-cased as genai-prices does), `prices` (one set, or a list
//! of sets with `constraint.start_date`, the last one in force winning) and
//! `deprecated`. Prices per 1M tokens are `input_mtok`, `output_mtok`,
//! `cache_read_mtok`, `cache_write_mtok` (5-minute writes), `cache_write_1h_mtok`,
//! each a number or `{"base", "tiers": [{"start", "price"}]}` (a tier's price
//! applies to every token once the prompt exceeds `start`), and
//! `web_searches_kcount` per 1000 web searches. Other keys and providers are
//! ignored.
//!
//! Validation is all or nothing: a catalog that is not JSON, lacks one of the
//! four providers the gateway routes to, or has a model with a malformed
//! rule or price is refused whole. A model whose rule uses something this
//! reader does not know (a future clause, a regex feature) is kept but never
//! matches, and counted in [`Catalog::skipped`].

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::rc::Rc;

use super::regex::Regex;
use super::{Row, Tiered};

/// The catalog providers, in `Provider` order: OpenAI, Anthropic, Gemini, Bedrock.
pub const PROVIDER_IDS: [&str; 4] = ["openai", "anthropic", "google", "aws"];

/// A model's match rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    Equals(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    Regex(Regex),
    Or(Vec<Rule>),
    And(Vec<Rule>),
    /// A rule this reader cannot evaluate.
    Never,
}

impl Rule {
    /// `name` must already be lower-case.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Rule::Equals(s) => name == s,
            Rule::StartsWith(s) => name.starts_with(s.as_str()),
            Rule::EndsWith(s) => name.ends_with(s.as_str()),
            Rule::Contains(s) => name.contains(s.as_str()),
            Rule::Regex(r) => r.is_match(name),
            Rule::Or(rules) => rules.iter().any(|r| r.matches(name)),
            Rule::And(rules) => rules.iter().all(|r| r.matches(name)),
            Rule::Never => false,
        }
    }

    fn never_matches(&self) -> bool {
        match self {
            Rule::Never => true,
            Rule::Or(rules) => rules.iter().all(Rule::never_matches),
            Rule::And(rules) => rules.iter().any(Rule::never_matches),
            _ => false,
        }
    }
}

/// One catalog model.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub id: Rc<str>,
    pub rule: Rule,
    /// Price sets with the day (since the Unix epoch) each starts; the first has 0.
    pub prices: Vec<(u32, Row)>,
    pub deprecated: bool,
}

impl Model {
    /// The prices in force on `day`: the last set that has started, else the first.
    pub fn row(&self, day: u32) -> Option<&Row> {
        self.prices.iter().rev().find(|(start, _)| *start <= day).or(self.prices.first()).map(|(_, row)| row)
    }
}

/// A parsed, validated catalog.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Catalog {
    /// Models per provider, in `PROVIDER_IDS` order, in catalog order (the first match wins).
    pub providers: [Vec<Model>; 4],
    /// Models kept but never matched: their rule uses something this reader does not support.
    pub skipped: usize,
}

#[derive(Deserialize)]
struct RawProvider<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    models: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct RawModel<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(rename = "match")]
    rule: Value,
    #[serde(borrow)]
    prices: &'a RawValue,
    #[serde(default)]
    deprecated: Option<bool>,
}

#[derive(Deserialize)]
struct RawConditional<'a> {
    #[serde(default)]
    constraint: Option<Value>,
    #[serde(borrow)]
    prices: &'a RawValue,
}

const MAX_MODELS: usize = 20_000;

impl Catalog {
    /// Parses and validates a catalog; the error names the first problem.
    pub fn parse(json: &[u8]) -> Result<Catalog, String> {
        let raw: Vec<RawProvider> = serde_json::from_slice(json).map_err(|e| format!("not a catalog: {e}"))?;
        let mut catalog = Catalog::default();
        let mut seen = [false; 4];
        let mut total = 0usize;
        for p in raw {
            let Some(slot) = PROVIDER_IDS.iter().position(|id| *id == p.id) else {
                continue;
            };
            let (Some(done), Some(models)) = (seen.get_mut(slot), catalog.providers.get_mut(slot)) else {
                continue;
            };
            if *done {
                return Err(format!("provider {}: listed twice", p.id));
            }
            *done = true;
            for raw in p.models.unwrap_or_default() {
                total += 1;
                if total > MAX_MODELS {
                    return Err(format!("more than {MAX_MODELS} models"));
                }
                let model = parse_model(raw).map_err(|e| format!("provider {}: {e}", p.id))?;
                let Some(model) = model else { continue };
                if model.rule.never_matches() {
                    catalog.skipped += 1;
                }
                models.push(model);
            }
        }
        for (id, (done, models)) in PROVIDER_IDS.iter().zip(seen.iter().zip(catalog.providers.iter())) {
            if !done || models.is_empty() {
                return Err(format!("provider {id}: missing or without priced models (a partial catalog)"));
            }
        }
        Ok(catalog)
    }

    /// Models with a price, over all providers.
    pub fn len(&self) -> usize {
        self.providers.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A model, or `None` when it has no token price (free or priced in units the gateway does not bill).
fn parse_model(raw: &RawValue) -> Result<Option<Model>, String> {
    let m: RawModel = serde_json::from_str(raw.get()).map_err(|e| format!("model: {e}"))?;
    let id = m.id.as_ref();
    let at = |e: String| format!("model {id}: {e}");
    if id.is_empty() || id.len() > 256 {
        return Err(at("id must be 1 to 256 characters".into()));
    }
    let rule = rule(&m.rule, 0).map_err(at)?;
    let text = m.prices.get().trim_start();
    let mut prices = Vec::new();
    if text.starts_with('[') {
        let list: Vec<RawConditional> = serde_json::from_str(text).map_err(|e| at(format!("prices: {e}")))?;
        for (i, c) in list.into_iter().enumerate() {
            let day = match &c.constraint {
                None | Some(Value::Null) => 0,
                Some(Value::Object(o)) if o.len() == 1 && o.contains_key("start_date") => {
                    let date = o.get("start_date").and_then(Value::as_str).unwrap_or_default();
                    days_from_date(date).ok_or_else(|| at(format!("prices[{i}]: bad start_date {date:?}")))?
                }
                // Another kind of constraint (time of day): never in force here.
                Some(_) => continue,
            };
            if let Some(row) = row(c.prices).map_err(|e| at(format!("prices[{i}].{e}")))? {
                prices.push((day, row));
            }
        }
    } else if let Some(row) = row(m.prices).map_err(|e| at(format!("prices.{e}")))? {
        prices.push((0, row));
    }
    if prices.is_empty() {
        return Ok(None);
    }
    Ok(Some(Model { id: Rc::from(id), rule, prices, deprecated: m.deprecated.unwrap_or(false) }))
}

fn rule(v: &Value, depth: u32) -> Result<Rule, String> {
    if depth > 16 {
        return Err("match: nested too deep".into());
    }
    let Some(obj) = v.as_object().filter(|o| o.len() == 1) else {
        return Err("match: each clause must be an object with one key".into());
    };
    let Some((key, value)) = obj.iter().next() else {
        return Err("match: empty clause".into());
    };
    let text = || value.as_str().map(str::to_ascii_lowercase).ok_or_else(|| format!("match.{key}: must be a string"));
    let list = || -> Result<Vec<Rule>, String> {
        let items = value.as_array().ok_or_else(|| format!("match.{key}: must be a list"))?;
        items.iter().map(|c| rule(c, depth + 1)).collect()
    };
    Ok(match key.as_str() {
        "equals" => Rule::Equals(text()?),
        "starts_with" => Rule::StartsWith(text()?),
        "ends_with" => Rule::EndsWith(text()?),
        "contains" => Rule::Contains(text()?),
        "regex" => {
            let pattern = value.as_str().ok_or("match.regex: must be a string")?;
            Regex::new(pattern).map(Rule::Regex).unwrap_or(Rule::Never)
        }
        "or" => Rule::Or(list()?),
        "and" => Rule::And(list()?),
        _ => Rule::Never,
    })
}

#[derive(Deserialize)]
struct RawTiered {
    base: f64,
    tiers: Vec<RawTier>,
}

#[derive(Deserialize)]
struct RawTier {
    start: u64,
    price: f64,
}

/// A price set, or `None` without input and output prices.
fn row(raw: &RawValue) -> Result<Option<Row>, String> {
    let map: serde_json::Map<String, Value> = serde_json::from_str(raw.get()).map_err(|e| format!(" {e}"))?;
    let tiered = |key: &str| -> Result<Option<Tiered>, String> {
        let Some(v) = map.get(key).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let t = match v {
            Value::Number(n) => Tiered::flat(n.as_f64().unwrap_or(f64::NAN)),
            _ => {
                let t: RawTiered = serde_json::from_value(v.clone()).map_err(|e| format!("{key}: {e}"))?;
                let mut tiers: Vec<(u64, f64)> = t.tiers.into_iter().map(|t| (t.start, t.price)).collect();
                tiers.sort_by_key(|(start, _)| *start);
                Tiered { base: t.base, tiers }
            }
        };
        let valid = |p: f64| p.is_finite() && p >= 0.0;
        if !valid(t.base) || !t.tiers.iter().all(|(_, p)| valid(*p)) {
            return Err(format!("{key}: prices must be numbers >= 0"));
        }
        Ok(Some(t))
    };
    let input = tiered("input_mtok")?;
    let output = tiered("output_mtok")?;
    let cache_read = tiered("cache_read_mtok")?;
    let cache_write_5m = tiered("cache_write_mtok")?;
    let cache_write_1h = tiered("cache_write_1h_mtok")?;
    let web_search_per_1k = match map.get("web_searches_kcount") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64().filter(|p| p.is_finite() && *p >= 0.0).ok_or("web_searches_kcount: must be a number >= 0")?,
        ),
    };
    if input.is_none() && output.is_none() {
        return Ok(None);
    }
    Ok(Some(Row {
        input: input.unwrap_or_else(|| Tiered::flat(0.0)),
        output: output.unwrap_or_else(|| Tiered::flat(0.0)),
        cache_read,
        cache_write_5m,
        cache_write_1h,
        web_search_per_1k,
    }))
}

/// `YYYY-MM-DD` as days since 1970-01-01.
pub fn days_from_date(date: &str) -> Option<u32> {
    let mut parts = date.split('-');
    let y: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let d: u64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    u32::try_from(crate::calendar::days_from_civil(y, m, d)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"[
        {"id":"openai","models":[{"id":"gpt-x","match":{"equals":"gpt-x"},"prices":{"input_mtok":1,"output_mtok":2}}]},
        {"id":"anthropic","extractors":[{"root":"usage"}],"models":[
            {"id":"claude-x","match":{"or":[{"starts_with":"Claude-X"},{"regex":"^cx-\\d+$"}]},
             "prices":[{"prices":{"input_mtok":{"base":3,"tiers":[{"start":200000,"price":6}]},"output_mtok":15}},
                       {"constraint":{"start_date":"2030-01-01"},"prices":{"input_mtok":4,"output_mtok":20,"web_searches_kcount":10}}]},
            {"id":"free","match":{"equals":"free"},"prices":{}},
            {"id":"future-rule","match":{"glob":"*"},"prices":{"input_mtok":1}}]},
        {"id":"google","models":[{"id":"gemini-x","match":{"contains":"gemini-x"},"prices":{"input_mtok":0.1,"output_mtok":0.4}}]},
        {"id":"aws","models":[{"id":"a.claude-x","match":{"contains":"claude-x"},"prices":{"input_mtok":3.3,"output_mtok":16.5}}]},
        {"id":"mistral","models":[{"id":"m","match":{"weird":[]},"prices":"not even an object"}]}
    ]"#;

    #[test]
    fn reads_the_published_schema() {
        let c = Catalog::parse(MINI.as_bytes()).unwrap();
        assert_eq!(c.len(), 5, "the free model is dropped, other providers ignored");
        assert_eq!(c.skipped, 1);
        let claude = &c.providers[1][0];
        assert!(claude.rule.matches("claude-x-20250101") && claude.rule.matches("cx-12"));
        let now = days_from_date("2026-11-22").unwrap();
        let row = claude.row(now).unwrap();
        assert_eq!((row.input.base, row.input.tiers.clone(), row.output.base), (3.0, vec![(200_000, 6.0)], 15.0));
        let later = claude.row(days_from_date("2030-01-01").unwrap()).unwrap();
        assert_eq!((later.input.base, later.web_search_per_1k), (4.0, Some(10.0)));
        assert!(!c.providers[1][1].rule.matches("anything"));
    }

    #[test]
    fn a_bad_or_partial_catalog_is_refused_whole() {
        let bad = [
            ("", "not a catalog"),
            ("{}", "not a catalog"),
            (&MINI[..MINI.len() / 2], "not a catalog"),
            (r#"[{"id":"openai","models":[]}]"#, "provider openai: missing"),
            (&MINI.replace(r#""input_mtok":1,"output_mtok":2"#, r#""input_mtok":-1"#), "prices must be numbers >= 0"),
            (&MINI.replace(r#""input_mtok":0.1"#, r#""input_mtok":"0.1""#), "input_mtok"),
            (&MINI.replace(r#"{"equals":"gpt-x"}"#, r#"{"equals":1}"#), "match.equals"),
            (&MINI.replace(r#""2030-01-01""#, r#""2030-13-01""#), "start_date"),
        ];
        for (json, needle) in bad {
            let err = Catalog::parse(json.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn dates_are_days_since_the_epoch() {
        assert_eq!(days_from_date("1970-01-01"), Some(0));
        assert_eq!(days_from_date("2000-03-01"), Some(11_017));
        assert_eq!(days_from_date("2026-11-22"), Some(20_779));
        assert_eq!(days_from_date("2026-1-x"), None);
    }
}

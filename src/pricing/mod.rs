//! Model prices and the cost of a call.
//!
//! Prices come from a catalog ([`catalog`]): pydantic's genai-prices, a
//! pinned release generated into `catalog.json` by `make prices` and
//! embedded, or a newer one fetched at run time (`pricing.source`,
//! [`refresh`]). Operator overrides (`pricing.models`) win over it. Prices
//! are USD per 1M tokens, web searches per 1000.
//!
//! A model is looked up for the provider that serves it (Bedrock ids in the
//! `aws` entries, which carry Bedrock's own regional prices), under the
//! forms of [`names::forms`]: as sent, without its date, in its first-party
//! spelling. The catalog's rules are tried in catalog order and the first
//! match wins, as genai-prices does. A Bedrock id the `aws` entries lack is
//! priced from the first-party Anthropic row. What is found is remembered
//! per name (a bounded memo), so a lookup is one hash in the steady state.
//!
//! A name with no row follows [`UnknownModel`]: the flat
//! `default_fallback_cost_usd`, the most expensive model of its family
//! ([`names::family`]), or a 400 before the provider is called.
//!
//! Cost follows the token rule in `crate::usage`: uncached input at the input
//! rate, cache reads at the read rate, cache writes at the 5m or 1h write rate
//! (a write total without the split counts as 5m), so each token is priced
//! once. Reasoning is priced as output only where the provider's output count
//! leaves it out (Gemini). A tier applies to the whole call when the whole
//! prompt, cache included, exceeds its start. A missing cache price means:
//! for Claude models, Anthropic's multipliers of the input price (read 0.1x,
//! 5m write 1.25x, 1h write 2x); for others, the input price (1h writes fall
//! back to the 5m write price). Web searches the provider reports are priced
//! per 1000 where the row has a price.

pub mod catalog;
pub mod names;
pub mod refresh;
pub mod regex;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::Deserialize;

use crate::errors::{ApiError, ErrorKind};
use crate::providers::{self, Provider};
use crate::usage::Usage;
pub use catalog::Catalog;

/// The catalog the build embeds (`make prices`), and which release it is.
pub const BUILTIN_CATALOG: &str = include_str!("catalog.json");
pub const BUILTIN_VERSION: &str = include_str!("catalog.version");

/// One model's prices as configured (`pricing.models.<name>`), USD per 1M tokens.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write_5m: Option<f64>,
    pub cache_write_1h: Option<f64>,
    pub long_context: Option<LongContext>,
    /// USD per 1000 web searches.
    pub web_search: Option<f64>,
}

/// Prices for prompts longer than `threshold_tokens` (cache included).
/// Missing cache prices scale the base row's by `input / base input`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContext {
    pub threshold_tokens: u64,
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write_5m: Option<f64>,
    pub cache_write_1h: Option<f64>,
}

/// A per-1M price, with the prices that replace it once the prompt exceeds a start.
#[derive(Clone, Debug, PartialEq)]
pub struct Tiered {
    pub base: f64,
    /// `(start, price)`, ascending.
    pub tiers: Vec<(u64, f64)>,
}

impl Tiered {
    pub fn flat(base: f64) -> Tiered {
        Tiered { base, tiers: Vec::new() }
    }

    /// The price for a call whose whole prompt is `prompt` tokens.
    pub fn at(&self, prompt: u64) -> f64 {
        self.tiers.iter().rev().find(|(start, _)| prompt > *start).map_or(self.base, |(_, price)| *price)
    }

    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        std::iter::once(self.base).chain(self.tiers.iter().map(|(_, p)| *p))
    }
}

/// One model's prices.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub input: Tiered,
    pub output: Tiered,
    pub cache_read: Option<Tiered>,
    pub cache_write_5m: Option<Tiered>,
    pub cache_write_1h: Option<Tiered>,
    /// USD per 1000 web searches.
    pub web_search_per_1k: Option<f64>,
}

impl Row {
    fn from_config(name: &str, p: &ModelPrice) -> Row {
        let claude = name.to_ascii_lowercase().contains("claude");
        // A tier's missing cache price scales the base one (itself defaulted by the rules above).
        let (read_x, write_5m_x) = if claude { (0.1, 1.25) } else { (1.0, 1.0) };
        let read = p.cache_read.unwrap_or(read_x * p.input);
        let write_5m = p.cache_write_5m.unwrap_or(write_5m_x * p.input);
        let write_1h = p.cache_write_1h.unwrap_or(if claude { 2.0 * p.input } else { write_5m });
        let field = |base: f64, tier: Option<f64>| -> Tiered {
            let tiers = p.long_context.as_ref().map(|lc| {
                let scaled = if p.input > 0.0 { base * lc.input / p.input } else { base };
                vec![(lc.threshold_tokens, tier.unwrap_or(scaled))]
            });
            Tiered { base, tiers: tiers.unwrap_or_default() }
        };
        let lc = p.long_context.as_ref();
        Row {
            input: field(p.input, lc.map(|lc| lc.input)),
            output: field(p.output, lc.map(|lc| lc.output)),
            cache_read: Some(field(read, lc.and_then(|lc| lc.cache_read))),
            cache_write_5m: Some(field(write_5m, lc.and_then(|lc| lc.cache_write_5m))),
            cache_write_1h: Some(field(write_1h, lc.and_then(|lc| lc.cache_write_1h))),
            web_search_per_1k: p.web_search,
        }
    }

    /// Every price in the row, for validation.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        let optional = [&self.cache_read, &self.cache_write_5m, &self.cache_write_1h];
        self.input
            .values()
            .chain(self.output.values())
            .chain(optional.into_iter().flatten().flat_map(Tiered::values))
            .chain(self.web_search_per_1k)
    }
}

/// What to do with a model that has no price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnknownModel {
    /// The flat `default_fallback_cost_usd`, whatever the call's size.
    Fallback,
    /// The most expensive known model of its family and provider; the flat amount when it has none.
    #[default]
    Family,
    /// A 400 naming the model, before the provider is called.
    Reject,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostSource {
    /// Priced from the model's own row (catalog or override).
    Table,
    /// Unknown model priced as the most expensive model of its family.
    Family,
    /// The configured flat amount: unknown model, or no usage reported.
    Fallback,
}

impl CostSource {
    /// `$ai_cost_fallback`: absent for a priced call.
    pub fn fallback_label(self) -> Option<&'static str> {
        match self {
            CostSource::Table => None,
            CostSource::Family => Some("family"),
            CostSource::Fallback => Some("flat"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    /// Uncached input, cache reads and cache writes.
    pub input_usd: f64,
    pub output_usd: f64,
    /// Server-side tools (web search).
    pub tools_usd: f64,
    pub total_usd: f64,
    pub source: CostSource,
    /// The row the call was priced with (catalog model id or override name).
    pub priced_as: Option<Rc<str>>,
}

impl Cost {
    pub fn flat(usd: f64) -> Cost {
        Cost {
            input_usd: 0.0,
            output_usd: 0.0,
            tools_usd: 0.0,
            total_usd: usd,
            source: CostSource::Fallback,
            priced_as: None,
        }
    }
}

/// A model's base prices, as [`PriceTable::lookup`] reports them.
#[derive(Clone, Debug, PartialEq)]
pub struct Quote {
    pub model: Rc<str>,
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write_5m: Option<f64>,
    pub cache_write_1h: Option<f64>,
    pub web_search_per_1k: Option<f64>,
}

impl Quote {
    fn of(model: Rc<str>, row: &Row) -> Quote {
        Quote {
            model,
            input: row.input.base,
            output: row.output.base,
            cache_read: row.cache_read.as_ref().map(|t| t.base),
            cache_write_5m: row.cache_write_5m.as_ref().map(|t| t.base),
            cache_write_1h: row.cache_write_1h.as_ref().map(|t| t.base),
            web_search_per_1k: row.web_search_per_1k,
        }
    }
}

/// Where a name's price is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Override(usize),
    Model(usize, usize),
    Family(usize, usize),
    Unknown,
}

/// Names remembered per provider slot before the memo starts over.
const MEMO_MAX: usize = 4096;

/// The catalog, the operator's overrides and the unknown-model policy.
#[derive(Clone, Debug)]
pub struct PriceTable {
    catalog: Rc<Catalog>,
    overrides: Rc<Overrides>,
    unknown: UnknownModel,
    /// Per provider: family name → its most expensive model.
    families: Rc<[HashMap<String, usize>; 4]>,
    /// Per provider slot (and one for an unknown provider): name → where its price is.
    memo: RefCell<[HashMap<Box<str>, Found>; 5]>,
}

#[derive(Debug, Default)]
struct Overrides {
    rows: Vec<(Rc<str>, Row)>,
    index: HashMap<String, usize>,
}

/// The 400 for a model without a price under `pricing.unknown_model: reject`.
pub fn unpriced(model: &str) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        format!(
            "Model '{}' has no price in the gateway's price table, and this gateway refuses unpriced models \
             (pricing.unknown_model: reject); ask the operator to add it under pricing.models",
            crate::routes::truncate(model, 128)
        ),
    )
    .param("model")
    .code("model_not_priced")
}

/// The day (since the Unix epoch) of a Unix time in milliseconds.
pub fn day_of(ms: u64) -> u32 {
    u32::try_from(ms / 86_400_000).unwrap_or(u32::MAX)
}

fn slot(p: Provider) -> usize {
    match p {
        // Azure OpenAI is priced as OpenAI's models.
        Provider::OpenAi | Provider::Azure => 0,
        Provider::Anthropic => 1,
        Provider::Gemini => 2,
        Provider::Bedrock => 3,
    }
}

impl PriceTable {
    /// The embedded catalog, without overrides, with the default policy.
    pub fn builtin() -> PriceTable {
        // The embedded file is checked by a unit test; an empty table is the
        // only outcome of a bad build, and it prices everything by the policy.
        PriceTable::new(Catalog::parse(BUILTIN_CATALOG.as_bytes()).unwrap_or_default())
    }

    pub fn new(catalog: Catalog) -> PriceTable {
        let families = families(&catalog);
        PriceTable {
            catalog: Rc::new(catalog),
            overrides: Rc::default(),
            unknown: UnknownModel::default(),
            families: Rc::new(families),
            memo: RefCell::default(),
        }
    }

    /// The same overrides and policy over another catalog.
    pub fn with_catalog(&self, catalog: Catalog) -> PriceTable {
        PriceTable { overrides: Rc::clone(&self.overrides), unknown: self.unknown, ..PriceTable::new(catalog) }
    }

    /// Adds or replaces rows; an override applies to every spelling that
    /// resolves to its name, for every provider.
    pub fn with_overrides(self, overrides: impl IntoIterator<Item = (String, ModelPrice)>) -> PriceTable {
        let mut o = Overrides::default();
        for (name, price) in overrides {
            let row = Row::from_config(&name, &price);
            o.index.insert(name.clone(), o.rows.len());
            o.rows.push((Rc::from(name.as_str()), row));
        }
        PriceTable { overrides: Rc::new(o), memo: RefCell::default(), ..self }
    }

    pub fn with_unknown_model(self, unknown: UnknownModel) -> PriceTable {
        PriceTable { unknown, memo: RefCell::default(), ..self }
    }

    pub fn unknown_model(&self) -> UnknownModel {
        self.unknown
    }

    /// Every model id the table names: the operator's overrides and the catalog's models.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let overrides = self.overrides.rows.iter().map(|(name, _)| &**name);
        overrides.chain(self.catalog.providers.iter().flatten().filter(|m| !m.deprecated).map(|m| &*m.id))
    }

    /// Catalog models with a price.
    pub fn models(&self) -> usize {
        self.catalog.len()
    }

    /// The base prices of `model`'s own row (no family), from its latest price set.
    pub fn lookup(&self, model: &str) -> Option<Quote> {
        let found = self.find(None, model);
        if matches!(found, Found::Family(..)) {
            return None;
        }
        let (name, row) = self.row(found, u32::MAX)?;
        Some(Quote::of(name, row))
    }

    /// The model's own row, or its family's under the `family` policy.
    pub fn quote(&self, provider: Option<Provider>, model: &str, day: u32) -> Option<Quote> {
        let (name, row) = self.row(self.find(provider, model), day)?;
        Some(Quote::of(name, row))
    }

    /// Under the `reject` policy, whether a call to `model` must be refused.
    pub fn rejects(&self, provider: Option<Provider>, model: &str) -> bool {
        self.unknown == UnknownModel::Reject && self.find(provider, model) == Found::Unknown
    }

    /// Prices `usage` by the first of `models` that has a row of its own (the
    /// model that answered, then the one asked for), else as the unknown-model
    /// policy says; `day` picks dated price changes.
    pub fn cost(
        &self,
        provider: Option<Provider>,
        models: &[&str],
        usage: &Usage,
        day: u32,
        fallback_usd: f64,
    ) -> Cost {
        // A name's own row first, then its family's (lookups after the first are memo hits).
        let found = |family: bool| {
            models.iter().map(|m| self.find(provider, m)).find(|f| match f {
                Found::Override(_) | Found::Model(..) => !family,
                Found::Family(..) => family,
                Found::Unknown => false,
            })
        };
        let pick = found(false).or_else(|| found(true));
        let Some((name, row)) = pick.and_then(|f| self.row(f, day)) else {
            return Cost::flat(fallback_usd);
        };
        let source = if matches!(pick, Some(Found::Family(..))) { CostSource::Family } else { CostSource::Table };
        let claude = name.as_bytes().windows(6).any(|w| w.eq_ignore_ascii_case(b"claude"));
        let mut c = price(row, claude, usage);
        c.source = source;
        c.priced_as = Some(name);
        c
    }

    fn row(&self, found: Found, day: u32) -> Option<(Rc<str>, &Row)> {
        match found {
            Found::Override(i) => self.overrides.rows.get(i).map(|(n, r)| (Rc::clone(n), r)),
            Found::Model(p, i) | Found::Family(p, i) => {
                let m = self.catalog.providers.get(p)?.get(i)?;
                Some((Rc::clone(&m.id), m.row(day)?))
            }
            Found::Unknown => None,
        }
    }

    fn find(&self, provider: Option<Provider>, model: &str) -> Found {
        let memo_slot = provider.map_or(4, slot);
        if let Some(found) = self.memo.borrow().get(memo_slot).and_then(|m| m.get(model)) {
            return *found;
        }
        let found = self.resolve(provider, model);
        if let Some(memo) = self.memo.borrow_mut().get_mut(memo_slot) {
            if memo.len() >= MEMO_MAX {
                memo.clear();
            }
            memo.insert(Box::from(model), found);
        }
        found
    }

    fn resolve(&self, provider: Option<Provider>, model: &str) -> Found {
        let forms = names::forms(model);
        let o = &self.overrides;
        let exact = std::iter::once(model).chain(forms.iter().map(String::as_str));
        if let Some(i) = exact.clone().find_map(|f| o.index.get(f)) {
            return Found::Override(*i);
        }
        let provider = provider.or_else(|| providers::infer(model).map(|(p, _)| p));
        let slots: Vec<usize> = match provider {
            Some(p) => vec![slot(p)],
            None => (0..4).collect(),
        };
        for s in &slots {
            let Some(models) = self.catalog.providers.get(*s) else { continue };
            for f in &forms {
                if let Some(i) = models.iter().position(|m| m.rule.matches(f)) {
                    return Found::Model(*s, i);
                }
            }
        }
        // A Bedrock id the aws entries lack: its first-party row.
        let anthropic = slot(Provider::Anthropic);
        if provider == Some(Provider::Bedrock) {
            let models = self.catalog.providers.get(anthropic).map_or(&[][..], Vec::as_slice);
            for f in forms.iter().skip(1) {
                if let Some(i) = models.iter().position(|m| m.rule.matches(f)) {
                    return Found::Model(anthropic, i);
                }
            }
        }
        if self.unknown == UnknownModel::Family {
            let family = names::family(model);
            if !family.is_empty() {
                let bedrock = (provider == Some(Provider::Bedrock)).then_some(anthropic);
                for s in slots.iter().copied().chain(bedrock) {
                    if let Some(i) = self.families.get(s).and_then(|f| f.get(&family)) {
                        return Found::Family(s, *i);
                    }
                }
            }
        }
        Found::Unknown
    }
}

/// Per provider, each family's most expensive model (deprecated ones aside),
/// by its highest input price, then output price, over all its price sets.
fn families(catalog: &Catalog) -> [HashMap<String, usize>; 4] {
    let mut out: [HashMap<String, usize>; 4] = Default::default();
    for (models, map) in catalog.providers.iter().zip(out.iter_mut()) {
        let score = |i: usize| -> (f64, f64) {
            let sets = models.get(i).map_or(&[][..], |m| m.prices.as_slice());
            sets.iter().fold((0.0, 0.0), |(a, b), (_, r)| (f64::max(a, r.input.base), f64::max(b, r.output.base)))
        };
        for (i, m) in models.iter().enumerate() {
            if m.deprecated {
                continue;
            }
            let family = names::family(&m.id);
            if family.is_empty() {
                continue;
            }
            let better = match map.get(&family) {
                Some(j) => score(i).partial_cmp(&score(*j)) == Some(std::cmp::Ordering::Greater),
                None => true,
            };
            if better {
                map.insert(family, i);
            }
        }
    }
    out
}

/// Prices `usage` for the model `model` on `provider` (inferred from the name
/// when `None`) on `day`; an unpriced model costs what the policy says.
pub fn cost(table: &PriceTable, model: &str, usage: &Usage, day: u32, fallback_usd: f64) -> Cost {
    table.cost(None, &[model], usage, day, fallback_usd)
}

fn price(row: &Row, claude: bool, usage: &Usage) -> Cost {
    let read = usage.cache_read_tokens.unwrap_or(0);
    let written = usage.cache_creation_total();
    let written_1h = usage.cache_creation_1h_tokens.unwrap_or(0).min(written);
    let written_5m = written - written_1h;
    let uncached = if usage.input_includes_cache {
        usage.input_tokens.saturating_sub(read.saturating_add(written))
    } else {
        usage.input_tokens
    };
    let prompt = uncached.saturating_add(read).saturating_add(written);
    let r = Rates::of(row, claude, prompt);
    let per_token = |tokens: u64, rate: f64| tokens as f64 * rate / 1_000_000.0;
    let input_usd = per_token(uncached, r.input)
        + per_token(read, r.read)
        + per_token(written_5m, r.write_5m)
        + per_token(written_1h, r.write_1h);
    let output_usd = per_token(usage.billed_output_tokens(), r.output);
    let searches = usage.web_search_requests.unwrap_or(0);
    let tools_usd = row.web_search_per_1k.map_or(0.0, |per_1k| searches as f64 * per_1k / 1000.0);
    Cost {
        input_usd,
        output_usd,
        tools_usd,
        total_usd: input_usd + output_usd + tools_usd,
        source: CostSource::Table,
        priced_as: None,
    }
}

/// The per-1M rates that apply to one call.
struct Rates {
    input: f64,
    output: f64,
    read: f64,
    write_5m: f64,
    write_1h: f64,
}

impl Rates {
    fn of(p: &Row, claude: bool, prompt: u64) -> Rates {
        let at = |t: &Option<Tiered>| t.as_ref().map(|t| t.at(prompt));
        let input = p.input.at(prompt);
        // Anthropic's multipliers (docs/protocols/anthropic-messages.md); others bill at input.
        let (read_x, write_5m_x) = if claude { (0.1, 1.25) } else { (1.0, 1.0) };
        let write_5m = at(&p.cache_write_5m).unwrap_or(write_5m_x * input);
        let write_1h = at(&p.cache_write_1h).unwrap_or(if claude { 2.0 * input } else { write_5m });
        Rates {
            input,
            output: p.output.at(prompt),
            read: at(&p.cache_read).unwrap_or(read_x * input),
            write_5m,
            write_1h,
        }
    }
}

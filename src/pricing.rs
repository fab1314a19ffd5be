//! Model prices and the cost of a call.
//!
//! Prices are USD per 1M tokens. A model is found by its exact name, then with
//! a date suffix (`-20250929`, `-2024-08-06`, `@20250929`, `-latest`) removed,
//! then with provider spellings mapped onto the first-party name: `gemini/`
//! and `models/` prefixes, and Bedrock ids (`bedrock/…`, inference-profile
//! regions `us.`/`eu.`/`apac.`/`global.`/…, `anthropic.`, `-v1:0`).
//!
//! Cost follows the token rule in `crate::usage`: uncached input at the input
//! rate, cache reads at the read rate, cache writes at the 5m or 1h write rate
//! (a write total without the split counts as 5m), so each token is priced
//! once. Reasoning is priced as output only where the provider's output count
//! leaves it out (Gemini). A long-context tier applies when the whole prompt,
//! cache included, exceeds its threshold.

use std::collections::HashMap;

use serde::Deserialize;

use crate::usage::Usage;

/// One model's prices, USD per 1M tokens. A missing cache price means: for
/// Claude models, Anthropic's multipliers of the input price (read 0.1x,
/// 5m write 1.25x, 1h write 2x); for others, the input price (1h writes fall
/// back to the 5m write price).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write_5m: Option<f64>,
    pub cache_write_1h: Option<f64>,
    pub long_context: Option<LongContext>,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostSource {
    /// Priced from the table.
    Table,
    /// Unknown model: the configured fallback amount, not split.
    Fallback,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    /// Uncached input, cache reads and cache writes.
    pub input_usd: f64,
    pub output_usd: f64,
    pub total_usd: f64,
    pub source: CostSource,
}

/// Built-in prices plus configured overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceTable {
    rows: HashMap<String, ModelPrice>,
}

impl PriceTable {
    pub fn builtin() -> Self {
        let mut rows = HashMap::new();
        for (names, price) in BUILTIN {
            for name in *names {
                rows.insert((*name).to_owned(), price.clone());
            }
        }
        PriceTable { rows }
    }

    /// Adds or replaces rows; an override applies to every spelling that
    /// resolves to its name.
    pub fn with_overrides(mut self, overrides: impl IntoIterator<Item = (String, ModelPrice)>) -> Self {
        self.rows.extend(overrides);
        self
    }

    /// Every model id the table names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rows.keys().map(String::as_str)
    }

    pub fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        self.resolve(model).map(|(_, price)| price)
    }

    fn resolve(&self, model: &str) -> Option<(&str, &ModelPrice)> {
        let normal = normalise(model);
        let found = [Some(model), strip_date(model), Some(normal.as_str()), strip_date(&normal)]
            .into_iter()
            .flatten()
            .find_map(|key| self.rows.get_key_value(key))
            .map(|(key, price)| (key.as_str(), price));
        found
    }
}

/// Prices `usage` for `model`; an unknown model costs `fallback_usd` in total.
pub fn cost(table: &PriceTable, model: &str, usage: &Usage, fallback_usd: f64) -> Cost {
    let Some((key, price)) = table.resolve(model) else {
        return Cost { input_usd: 0.0, output_usd: 0.0, total_usd: fallback_usd, source: CostSource::Fallback };
    };
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
    let r = Rates::of(price, key.contains("claude"), prompt);
    let per_token = |tokens: u64, rate: f64| tokens as f64 * rate / 1_000_000.0;
    let input_usd = per_token(uncached, r.input)
        + per_token(read, r.read)
        + per_token(written_5m, r.write_5m)
        + per_token(written_1h, r.write_1h);
    let output_usd = per_token(usage.billed_output_tokens(), r.output);
    Cost { input_usd, output_usd, total_usd: input_usd + output_usd, source: CostSource::Table }
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
    fn of(p: &ModelPrice, anthropic: bool, prompt_tokens: u64) -> Rates {
        let (input, output, read, write_5m, write_1h) = match &p.long_context {
            Some(lc) if prompt_tokens > lc.threshold_tokens => {
                let scale = |tier: Option<f64>, base: Option<f64>| {
                    tier.or_else(|| base.filter(|_| p.input > 0.0).map(|b| b * lc.input / p.input))
                };
                (
                    lc.input,
                    lc.output,
                    scale(lc.cache_read, p.cache_read),
                    scale(lc.cache_write_5m, p.cache_write_5m),
                    scale(lc.cache_write_1h, p.cache_write_1h),
                )
            }
            _ => (p.input, p.output, p.cache_read, p.cache_write_5m, p.cache_write_1h),
        };
        // Anthropic's multipliers (PROTOCOLS C); others bill at input.
        let (read_x, write_5m_x) = if anthropic { (0.1, 1.25) } else { (1.0, 1.0) };
        let write_5m = write_5m.unwrap_or(write_5m_x * input);
        let write_1h = write_1h.unwrap_or(if anthropic { 2.0 * input } else { write_5m });
        Rates { input, output, read: read.unwrap_or(read_x * input), write_5m, write_1h }
    }
}

/// Maps provider spellings onto the first-party name.
fn normalise(model: &str) -> String {
    let mut m = model.trim().to_ascii_lowercase();
    for prefix in ["gemini/", "models/"] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest.to_owned();
        }
    }
    // `bedrock/[converse/|invoke/][region/]id` and ARNs end in the id.
    if m.starts_with("bedrock/") || m.starts_with("arn:") {
        m = m.rsplit('/').next().unwrap_or_default().to_owned();
    }
    const REGIONS: [&str; 8] = ["global.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov."];
    for region in REGIONS {
        if let Some(rest) = m.strip_prefix(region) {
            if rest.starts_with("anthropic.") {
                m = rest.to_owned();
                break;
            }
        }
    }
    if let Some(rest) = m.strip_prefix("anthropic.") {
        m = rest.to_owned();
    }
    strip_version(&m).to_owned()
}

/// `-v1:0`, `-v2:0`, `-v1` Bedrock version suffixes.
fn strip_version(m: &str) -> &str {
    let Some((base, version)) = m.rsplit_once("-v") else {
        return m;
    };
    let mut parts = version.splitn(2, ':');
    let digits = |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let major = parts.next();
    let minor = parts.next();
    if digits(major) && (minor.is_none() || digits(minor)) {
        base
    } else {
        m
    }
}

/// Removes a trailing release date or `-latest`.
fn strip_date(m: &str) -> Option<&str> {
    if let Some(base) = m.strip_suffix("-latest") {
        return Some(base);
    }
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // -YYYYMMDD or @YYYYMMDD (Anthropic, Vertex).
    if let Some((base, date)) = m.rsplit_once(['-', '@']) {
        if date.len() == 8 && date.starts_with("20") && is_digits(date) {
            return Some(base);
        }
    }
    // -YYYY-MM-DD (OpenAI).
    let cut = m.len().checked_sub(11)?;
    let (base, date) = (m.get(..cut)?, m.get(cut..)?);
    let fields: Vec<&str> = date.split('-').collect();
    match fields.as_slice() {
        ["", y, mo, d]
            if y.len() == 4 && mo.len() == 2 && d.len() == 2 && is_digits(y) && is_digits(mo) && is_digits(d) =>
        {
            Some(base)
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Built-in prices.
//
// Source: LiteLLM `model_prices_and_context_window.json`, BerriAI/litellm
// commit 00035b69f416be24e2e323c13198d9b7d2d1bdf9 (per-token values x 1e6),
// cross-checked with PROTOCOLS.md F and Anthropic's prompt-caching price
// table. Where LiteLLM lacks a Claude 1h write price, or has one that breaks
// Anthropic's 2x rule (claude-3-haiku, claude-3-opus), 2x input is used.
//
// The LiteLLM data is used under the MIT License:
//
//   Copyright (c) 2023 Berri AI
//
//   Permission is hereby granted, free of charge, to any person obtaining a
//   copy of this software and associated documentation files (the
//   "Software"), to deal in the Software without restriction, including
//   without limitation the rights to use, copy, modify, merge, publish,
//   distribute, sublicense, and/or sell copies of the Software, and to permit
//   persons to whom the Software is furnished to do so, subject to the
//   following conditions:
//
//   The above copyright notice and this permission notice shall be included
//   in all copies or substantial portions of the Software.
//
//   THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS
//   OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
//   MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN
//   NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
//   DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
//   OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE
//   USE OR OTHER DEALINGS IN THE SOFTWARE.
// ---------------------------------------------------------------------------

/// Input, output and (when the provider discounts it) cache-read price.
const fn flat(input: f64, output: f64, cache_read: Option<f64>) -> ModelPrice {
    ModelPrice { input, output, cache_read, cache_write_5m: None, cache_write_1h: None, long_context: None }
}

/// A Claude row: input, output, 5m write, 1h write, read.
const fn claude(input: f64, output: f64, write_5m: f64, write_1h: f64, read: f64) -> ModelPrice {
    ModelPrice {
        input,
        output,
        cache_read: Some(read),
        cache_write_5m: Some(write_5m),
        cache_write_1h: Some(write_1h),
        long_context: None,
    }
}

/// A tier above `threshold_tokens`: input, output, read, 5m write, 1h write.
const fn above(
    base: ModelPrice,
    threshold_tokens: u64,
    (input, output): (f64, f64),
    cache_read: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
) -> ModelPrice {
    ModelPrice {
        long_context: Some(LongContext { threshold_tokens, input, output, cache_read, cache_write_5m, cache_write_1h }),
        ..base
    }
}

const fn with_write(base: ModelPrice, cache_write: f64) -> ModelPrice {
    ModelPrice { cache_write_5m: Some(cache_write), cache_write_1h: Some(cache_write), ..base }
}

const K200: u64 = 200_000;
const K272: u64 = 272_000;

static BUILTIN: &[(&[&str], ModelPrice)] = &[
    // OpenAI. Cache writes, where priced, have one rate (no 5m/1h split).
    (
        &["gpt-5.6", "gpt-5.6-sol"],
        above(with_write(flat(5.0, 30.0, Some(0.5)), 6.25), K272, (10.0, 45.0), Some(1.0), Some(12.5), Some(12.5)),
    ),
    (
        &["gpt-5.6-terra"],
        above(with_write(flat(2.5, 15.0, Some(0.25)), 3.125), K272, (5.0, 22.5), Some(0.5), Some(6.25), Some(6.25)),
    ),
    (
        &["gpt-5.6-luna"],
        above(with_write(flat(1.0, 6.0, Some(0.1)), 1.25), K272, (2.0, 9.0), Some(0.2), Some(2.5), Some(2.5)),
    ),
    (&["gpt-5.5"], above(flat(5.0, 30.0, Some(0.5)), K272, (10.0, 45.0), Some(1.0), None, None)),
    (&["gpt-5.5-pro", "gpt-5.4-pro"], above(flat(30.0, 180.0, Some(3.0)), K272, (60.0, 270.0), Some(6.0), None, None)),
    (&["gpt-5.4"], above(flat(2.5, 15.0, Some(0.25)), K272, (5.0, 22.5), Some(0.5), None, None)),
    (&["gpt-5.4-mini"], flat(0.75, 4.5, Some(0.075))),
    (&["gpt-5.4-nano"], flat(0.2, 1.25, Some(0.02))),
    (
        &["gpt-5.2", "gpt-5.2-chat-latest", "gpt-5.2-codex", "gpt-5.3-codex", "gpt-5.3-chat-latest"],
        flat(1.75, 14.0, Some(0.175)),
    ),
    (&["gpt-5.2-pro"], flat(21.0, 168.0, None)),
    (
        &[
            "gpt-5",
            "gpt-5-chat",
            "gpt-5-chat-latest",
            "gpt-5-codex",
            "gpt-5.1",
            "gpt-5.1-chat-latest",
            "gpt-5.1-codex",
            "gpt-5.1-codex-max",
        ],
        flat(1.25, 10.0, Some(0.125)),
    ),
    (&["gpt-5-mini", "gpt-5.1-codex-mini"], flat(0.25, 2.0, Some(0.025))),
    (&["gpt-5-nano"], flat(0.05, 0.4, Some(0.005))),
    (&["gpt-5-pro"], flat(15.0, 120.0, None)),
    (&["gpt-4.1"], flat(2.0, 8.0, Some(0.5))),
    (&["gpt-4.1-mini"], flat(0.4, 1.6, Some(0.1))),
    (&["gpt-4.1-nano"], flat(0.1, 0.4, Some(0.025))),
    (&["gpt-4o"], flat(2.5, 10.0, Some(1.25))),
    // The first gpt-4o snapshot kept its launch price.
    (&["gpt-4o-2024-05-13"], flat(5.0, 15.0, None)),
    (&["gpt-4o-mini"], flat(0.15, 0.6, Some(0.075))),
    (&["chatgpt-4o-latest"], flat(5.0, 15.0, None)),
    (&["gpt-4-turbo"], flat(10.0, 30.0, None)),
    (&["gpt-4"], flat(30.0, 60.0, None)),
    (&["gpt-3.5-turbo"], flat(0.5, 1.5, None)),
    (&["o1"], flat(15.0, 60.0, Some(7.5))),
    (&["o1-pro"], flat(150.0, 600.0, None)),
    (&["o3"], flat(2.0, 8.0, Some(0.5))),
    (&["o3-pro"], flat(20.0, 80.0, None)),
    (&["o3-mini"], flat(1.1, 4.4, Some(0.55))),
    (&["o3-deep-research"], flat(10.0, 40.0, Some(2.5))),
    (&["o4-mini"], flat(1.1, 4.4, Some(0.275))),
    (&["o4-mini-deep-research"], flat(2.0, 8.0, Some(0.5))),
    // Anthropic: input, output, 5m write, 1h write, read.
    (&["claude-fable-5"], claude(10.0, 50.0, 12.5, 20.0, 1.0)),
    (&["claude-sonnet-5"], claude(2.0, 10.0, 2.5, 4.0, 0.2)),
    (&["claude-opus-4-8", "claude-opus-4-7", "claude-opus-4-6", "claude-opus-4-5"], claude(5.0, 25.0, 6.25, 10.0, 0.5)),
    (&["claude-opus-4-1", "claude-opus-4", "claude-opus-4-0", "claude-4-opus"], claude(15.0, 75.0, 18.75, 30.0, 1.5)),
    (&["claude-sonnet-4-6"], claude(3.0, 15.0, 3.75, 6.0, 0.3)),
    (
        &["claude-sonnet-4-5", "claude-sonnet-4", "claude-sonnet-4-0", "claude-4-sonnet"],
        above(claude(3.0, 15.0, 3.75, 6.0, 0.3), K200, (6.0, 22.5), Some(0.6), Some(7.5), Some(12.0)),
    ),
    (&["claude-haiku-4-5"], claude(1.0, 5.0, 1.25, 2.0, 0.1)),
    (&["claude-3-7-sonnet"], claude(3.0, 15.0, 3.75, 6.0, 0.3)),
    // No first-party keys in LiteLLM: from `anthropic.claude-3-5-sonnet-20241022-v2:0`
    // (PROTOCOLS F) and `bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0`.
    (&["claude-3-5-sonnet"], claude(3.0, 15.0, 3.75, 6.0, 0.3)),
    (&["claude-3-5-haiku"], claude(0.8, 4.0, 1.0, 1.6, 0.08)),
    (&["claude-3-haiku"], claude(0.25, 1.25, 0.3, 0.5, 0.03)),
    (&["claude-3-opus"], claude(15.0, 75.0, 18.75, 30.0, 1.5)),
    // Gemini (Developer API and Vertex list the same token prices).
    (
        &["gemini-3.1-pro-preview", "gemini-3-pro-preview"],
        above(flat(2.0, 12.0, Some(0.2)), K200, (4.0, 18.0), Some(0.4), None, None),
    ),
    // From `vertex_ai/gemini-3-flash-preview`.
    (&["gemini-3-flash-preview"], flat(0.5, 3.0, Some(0.05))),
    (&["gemini-3.1-flash-lite", "gemini-3.1-flash-lite-preview"], flat(0.25, 1.5, Some(0.025))),
    (&["gemini-2.5-pro"], above(flat(1.25, 10.0, Some(0.125)), K200, (2.5, 15.0), Some(0.25), None, None)),
    (&["gemini-2.5-flash"], flat(0.3, 2.5, Some(0.03))),
    (&["gemini-2.5-flash-preview-09-2025"], flat(0.3, 2.5, Some(0.075))),
    (&["gemini-2.5-flash-lite", "gemini-2.5-flash-lite-preview-09-2025"], flat(0.1, 0.4, Some(0.01))),
    (&["gemini-2.0-flash"], flat(0.1, 0.4, Some(0.025))),
    (&["gemini-2.0-flash-lite"], flat(0.075, 0.3, Some(0.01875))),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn assert_cost(c: &Cost, input: f64, output: f64) {
        assert_eq!(c.source, CostSource::Table);
        assert!(close(c.input_usd, input), "input {} != {input}", c.input_usd);
        assert!(close(c.output_usd, output), "output {} != {output}", c.output_usd);
        assert!(close(c.total_usd, input + output), "total {}", c.total_usd);
    }

    #[test]
    fn openai_cached_tokens_are_taken_out_of_the_prompt() {
        // 86 uncached at $2.50, 1920 cached at $1.25; reasoning is inside
        // the 300 completion tokens and not added again.
        let usage = Usage {
            input_tokens: 2006,
            output_tokens: 300,
            cache_read_tokens: Some(1920),
            reasoning_tokens: Some(192),
            input_includes_cache: true,
            ..Usage::default()
        };
        let c = cost(&PriceTable::builtin(), "gpt-4o", &usage, 0.01);
        assert_cost(&c, (86.0 * 2.5 + 1920.0 * 1.25) / 1e6, 300.0 * 10.0 / 1e6);
        assert!(close(c.total_usd, 0.005615));
    }

    #[test]
    fn anthropic_reads_and_5m_and_1h_writes() {
        // PROTOCOLS C example on claude-sonnet-4-5.
        let usage = Usage {
            input_tokens: 2048,
            output_tokens: 503,
            cache_read_tokens: Some(1800),
            cache_creation_tokens: Some(248),
            cache_creation_5m_tokens: Some(148),
            cache_creation_1h_tokens: Some(100),
            input_includes_cache: false,
            ..Usage::default()
        };
        let c = cost(&PriceTable::builtin(), "claude-sonnet-4-5", &usage, 0.01);
        // 2048*3 + 1800*0.30 + 148*3.75 + 100*6 = 7839; 503*15 = 7545.
        assert_cost(&c, 7839.0 / 1e6, 7545.0 / 1e6);
        assert!(close(c.total_usd, 0.015384));
    }

    #[test]
    fn anthropic_write_total_without_split_is_5m() {
        let usage = Usage { input_tokens: 10, cache_creation_tokens: Some(1000), ..Usage::default() };
        let c = cost(&PriceTable::builtin(), "claude-haiku-4-5", &usage, 0.0);
        assert_cost(&c, (10.0 * 1.0 + 1000.0 * 1.25) / 1e6, 0.0);
    }

    #[test]
    fn long_context_sonnet_above_200k_prompt() {
        // 150k uncached + 60k read = 210k > 200k: the whole call at tier rates.
        let usage = Usage {
            input_tokens: 150_000,
            output_tokens: 1_000,
            cache_read_tokens: Some(60_000),
            cache_creation_1h_tokens: Some(0),
            ..Usage::default()
        };
        let t = PriceTable::builtin();
        let c = cost(&t, "claude-sonnet-4-5-20250929", &usage, 0.0);
        assert_cost(&c, (150_000.0 * 6.0 + 60_000.0 * 0.6) / 1e6, 1_000.0 * 22.5 / 1e6);
        assert!(close(c.total_usd, 0.9585));
        // At exactly 200k the base rates still apply.
        let at = Usage { input_tokens: 140_000, ..usage };
        let c = cost(&t, "claude-sonnet-4-5", &at, 0.0);
        assert_cost(&c, (140_000.0 * 3.0 + 60_000.0 * 0.3) / 1e6, 1_000.0 * 15.0 / 1e6);
    }

    #[test]
    fn long_context_tier_counts_openai_prompt_once() {
        let usage = Usage {
            input_tokens: 300_000,
            output_tokens: 10,
            cache_read_tokens: Some(100_000),
            input_includes_cache: true,
            ..Usage::default()
        };
        let c = cost(&PriceTable::builtin(), "gpt-5.4-2026-03-05", &usage, 0.0);
        assert_cost(&c, (200_000.0 * 5.0 + 100_000.0 * 0.5) / 1e6, 10.0 * 22.5 / 1e6);
    }

    #[test]
    fn gemini_reasoning_is_billed_as_output() {
        let usage = Usage {
            input_tokens: 120,
            output_tokens: 40,
            cache_read_tokens: Some(100),
            reasoning_tokens: Some(25),
            input_includes_cache: true,
            output_excludes_reasoning: true,
            ..Usage::default()
        };
        let c = cost(&PriceTable::builtin(), "gemini/gemini-2.5-flash", &usage, 0.0);
        assert_cost(&c, (20.0 * 0.3 + 100.0 * 0.03) / 1e6, 65.0 * 2.5 / 1e6);
    }

    #[test]
    fn date_suffixes_and_provider_ids_resolve_to_first_party_rows() {
        let t = PriceTable::builtin();
        let same = |alias: &str, base: &str| {
            assert_eq!(t.lookup(alias), t.lookup(base), "{alias}");
            assert!(t.lookup(alias).is_some(), "{alias}");
        };
        same("claude-sonnet-4-5-20250929", "claude-sonnet-4-5");
        same("gpt-4o-2024-08-06", "gpt-4o");
        same("gpt-5-2025-08-07", "gpt-5");
        same("claude-3-7-sonnet-latest", "claude-3-7-sonnet");
        same("claude-opus-4-5@20251101", "claude-opus-4-5");
        same("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5");
        same("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5");
        same("eu.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4");
        same("apac.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet");
        same("anthropic.claude-opus-4-6-v1", "claude-opus-4-6");
        same("anthropic.claude-sonnet-4-6", "claude-sonnet-4-6");
        same("bedrock/converse/us.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1");
        same(
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
            "claude-3-5-haiku",
        );
        same("gemini/gemini-2.5-pro", "gemini-2.5-pro");
        same("models/gemini-2.0-flash", "gemini-2.0-flash");
        // A dated row that differs from its family is matched exactly.
        assert_eq!(t.lookup("gpt-4o-2024-05-13").map(|p| p.input), Some(5.0));
        assert_eq!(t.lookup("gpt-4o-mini").map(|p| p.input), Some(0.15));
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18").map(|p| p.input), Some(0.15));
    }

    #[test]
    fn every_protocols_f_row_is_priced() {
        let t = PriceTable::builtin();
        let rows: [(&str, f64, f64, Option<f64>); 16] = [
            ("gpt-4.1", 2.0, 8.0, Some(0.5)),
            ("gpt-4.1-mini", 0.4, 1.6, Some(0.1)),
            ("gpt-4o", 2.5, 10.0, Some(1.25)),
            ("gpt-4o-mini", 0.15, 0.6, Some(0.075)),
            ("o3-mini", 1.1, 4.4, Some(0.55)),
            ("gpt-5", 1.25, 10.0, Some(0.125)),
            ("gpt-5-mini", 0.25, 2.0, Some(0.025)),
            ("gpt-5-nano", 0.05, 0.4, Some(0.005)),
            ("claude-sonnet-4-5-20250929", 3.0, 15.0, Some(0.3)),
            ("claude-sonnet-4-20250514", 3.0, 15.0, Some(0.3)),
            ("claude-opus-4-5-20251101", 5.0, 25.0, Some(0.5)),
            ("claude-opus-4-20250514", 15.0, 75.0, Some(1.5)),
            ("claude-haiku-4-5-20251001", 1.0, 5.0, Some(0.1)),
            ("anthropic.claude-3-5-sonnet-20241022-v2:0", 3.0, 15.0, Some(0.3)),
            ("gemini/gemini-2.5-pro", 1.25, 10.0, Some(0.125)),
            ("gemini/gemini-2.5-flash", 0.3, 2.5, Some(0.03)),
        ];
        for (model, input, output, read) in rows {
            let p = t.lookup(model).unwrap_or_else(|| panic!("{model}"));
            assert_eq!((p.input, p.output, p.cache_read), (input, output, read), "{model}");
        }
        let sonnet = t.lookup("claude-sonnet-4-5").unwrap();
        assert_eq!((sonnet.cache_write_5m, sonnet.cache_write_1h), (Some(3.75), Some(6.0)));
        let lc = sonnet.long_context.as_ref().unwrap();
        assert_eq!((lc.input, lc.output, lc.cache_read), (6.0, 22.5, Some(0.6)));
        let pro = t.lookup("gemini-2.5-pro").unwrap().long_context.as_ref().unwrap();
        assert_eq!((pro.input, pro.output, pro.cache_read), (2.5, 15.0, Some(0.25)));
    }

    #[test]
    fn unknown_model_costs_the_fallback() {
        let c = cost(&PriceTable::builtin(), "llama-9000", &Usage::default(), 0.01);
        assert_eq!(c, Cost { input_usd: 0.0, output_usd: 0.0, total_usd: 0.01, source: CostSource::Fallback });
    }

    #[test]
    fn overrides_replace_and_add_rows() {
        let overrides: Vec<(String, ModelPrice)> = serde_json::from_str(
            r#"[["gpt-4o", {"input": 1.0, "output": 2.0}],
                ["my-claude", {"input": 4.0, "output": 8.0}]]"#,
        )
        .unwrap();
        let t = PriceTable::builtin().with_overrides(overrides);
        assert_eq!(t.lookup("gpt-4o-2024-08-06").map(|p| p.input), Some(1.0));
        assert_eq!(t.lookup("gpt-4.1").map(|p| p.input), Some(2.0));
        // A Claude row without cache prices gets Anthropic's multipliers.
        let usage = Usage {
            input_tokens: 100,
            output_tokens: 10,
            cache_read_tokens: Some(1000),
            cache_creation_5m_tokens: Some(100),
            cache_creation_1h_tokens: Some(100),
            ..Usage::default()
        };
        let c = cost(&t, "my-claude", &usage, 0.0);
        assert_cost(&c, (100.0 * 4.0 + 1000.0 * 0.4 + 100.0 * 5.0 + 100.0 * 8.0) / 1e6, 10.0 * 8.0 / 1e6);
        // Elsewhere a missing cache price is the input price.
        let usage =
            Usage { input_tokens: 100, cache_read_tokens: Some(40), input_includes_cache: true, ..Usage::default() };
        let c = cost(&t, "gpt-4o", &usage, 0.0);
        assert_cost(&c, 100.0 * 1.0 / 1e6, 0.0);
    }

    #[test]
    fn override_rows_are_parsed_strictly() {
        assert!(serde_json::from_str::<ModelPrice>(r#"{"input":1,"output":2,"cached":0.5}"#).is_err());
        let p: ModelPrice = serde_json::from_str(
            r#"{"input":1,"output":2,"long_context":{"threshold_tokens":1000,"input":2,"output":4}}"#,
        )
        .unwrap();
        assert_eq!(p.long_context.map(|lc| lc.threshold_tokens), Some(1000));
    }

    #[test]
    fn date_stripping_is_exact() {
        assert_eq!(strip_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(strip_date("claude-opus-4-20250514"), Some("claude-opus-4"));
        assert_eq!(strip_date("gpt-4-0613"), None);
        assert_eq!(strip_date("gpt-4o"), None);
        assert_eq!(strip_date("é-2024-08-0é"), None);
        assert_eq!(strip_version("claude-x-v1:0"), "claude-x");
        assert_eq!(strip_version("claude-x-v2"), "claude-x");
        assert_eq!(strip_version("model-vision"), "model-vision");
    }
}

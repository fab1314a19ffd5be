use super::catalog::days_from_date;
use super::*;

/// A day the pinned figures below hold on (dated price changes aside).
fn today() -> u32 {
    days_from_date("2026-11-22").unwrap_or_default()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn assert_cost(c: &Cost, input: f64, output: f64) {
    assert_eq!(c.source, CostSource::Table, "{c:?}");
    assert!(close(c.input_usd, input), "input {} != {input}", c.input_usd);
    assert!(close(c.output_usd, output), "output {} != {output}", c.output_usd);
    assert!(close(c.total_usd, input + output + c.tools_usd), "total {}", c.total_usd);
}

fn builtin_cost(model: &str, usage: &Usage) -> Cost {
    cost(&PriceTable::builtin(), model, usage, today(), 0.01)
}

#[test]
fn the_embedded_catalog_parses_and_covers_every_provider() {
    let c = Catalog::parse(BUILTIN_CATALOG.as_bytes()).unwrap();
    for (id, models) in catalog::PROVIDER_IDS.iter().zip(c.providers.iter()) {
        assert!(models.len() >= 20, "{id}: {} models", models.len());
    }
    assert_eq!(c.skipped, 0, "every rule of the pinned catalog is understood");
    assert!(BUILTIN_VERSION.starts_with("genai-prices "));
}

/// The catalog's own figures (genai-prices 0.2.5, `prices/providers/*.yml`), per 1M tokens:
/// a regeneration that changes one of them fails here and shows in review.
#[test]
fn pinned_prices_match_the_catalog() {
    let t = PriceTable::builtin();
    // model, provider, input, output, cache read, 5m write, 1h write, web search per 1k
    type Pin = (&'static str, Provider, f64, f64, Option<f64>, Option<f64>, Option<f64>, Option<f64>);
    let pins: [Pin; 14] = [
        ("claude-opus-5-5", Provider::Anthropic, 4.0, 20.0, Some(0.2), Some(5.0), Some(8.0), Some(10.0)),
        ("claude-sonnet-4-6", Provider::Anthropic, 3.0, 15.0, Some(0.3), Some(3.75), Some(6.0), Some(10.0)),
        ("claude-haiku-4-5-20251001", Provider::Anthropic, 1.0, 5.0, Some(0.1), Some(1.25), Some(2.0), Some(10.0)),
        ("claude-opus-4-1", Provider::Anthropic, 15.0, 75.0, Some(1.5), Some(18.75), Some(30.0), Some(10.0)),
        ("gpt-5-codex", Provider::OpenAi, 1.25, 10.0, Some(0.125), None, None, Some(10.0)),
        ("gpt-5.5", Provider::OpenAi, 5.0, 30.0, Some(0.5), None, None, Some(10.0)),
        ("gpt-4o-mini", Provider::OpenAi, 0.15, 0.6, Some(0.075), None, None, Some(10.0)),
        // New in 0.2.5: an OpenAI model that bills cache writes, and a Gemini 4 model.
        ("gpt-6.2-sol", Provider::OpenAi, 2.0, 10.0, Some(0.1), Some(2.5), None, Some(10.0)),
        ("gemini-4-neon", Provider::Gemini, 3.0, 15.0, Some(0.15), None, None, Some(14.0)),
        ("gemini-2.5-flash", Provider::Gemini, 0.3, 2.5, Some(0.03), None, None, Some(35.0)),
        ("gemini-2.5-pro", Provider::Gemini, 1.25, 10.0, Some(0.125), None, None, Some(35.0)),
        // Bedrock's own prices: regional endpoints cost 10% more than global ones.
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Provider::Bedrock,
            3.3,
            16.5,
            Some(0.33),
            Some(4.125),
            Some(6.6),
            None,
        ),
        (
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Provider::Bedrock,
            3.0,
            15.0,
            Some(0.3),
            Some(3.75),
            Some(6.0),
            None,
        ),
        (
            "bedrock/eu.anthropic.claude-opus-5-5-v1:0",
            Provider::Bedrock,
            4.4,
            22.0,
            Some(0.22),
            Some(5.5),
            Some(8.8),
            None,
        ),
    ];
    for (model, provider, input, output, read, w5, w1, web) in pins {
        let q = t.quote(Some(provider), model, today()).unwrap_or_else(|| panic!("{model} is not priced"));
        let got = (q.input, q.output, q.cache_read, q.cache_write_5m, q.cache_write_1h, q.web_search_per_1k);
        assert_eq!(got, (input, output, read, w5, w1, web), "{model} ({})", q.model);
    }
}

#[test]
fn current_client_defaults_and_readme_models_are_priced_from_the_catalog() {
    let t = PriceTable::builtin().with_unknown_model(UnknownModel::Fallback);
    let models = [
        // Claude Code's default, and Codex CLI's gpt-5 family.
        "claude-opus-5-5",
        "gpt-5-codex",
        "gpt-5.1-codex-max",
        "gpt-5.2-codex",
        "gpt-5.3-codex",
        "gpt-5.5-codex",
        "gpt-5.5",
        "gpt-5.6",
        // Named in the README.
        "gpt-4o-mini",
        "claude-sonnet-4-6",
        "gemini-2.5-flash",
        "gemini/gemini-2.5-pro",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "claude-sonnet-4-5",
        "gpt-4o",
        "gpt-5",
        "claude-haiku-4-5",
    ];
    for m in models {
        let c = cost(&t, m, &Usage { input_tokens: 10, output_tokens: 10, ..Usage::default() }, today(), 0.0);
        assert_eq!(c.source, CostSource::Table, "{m}");
        assert!(c.total_usd > 0.0, "{m}");
    }
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
    let c = builtin_cost("gpt-4o", &usage);
    assert_cost(&c, (86.0 * 2.5 + 1920.0 * 1.25) / 1e6, 300.0 * 10.0 / 1e6);
    assert!(close(c.total_usd, 0.005615));
    assert_eq!(c.priced_as.as_deref(), Some("gpt-4o"));
}

#[test]
fn anthropic_reads_and_5m_and_1h_writes() {
    // docs/protocols/anthropic-messages.md's usage example, on claude-sonnet-4-5.
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
    let c = builtin_cost("claude-sonnet-4-5", &usage);
    // 2048*3 + 1800*0.30 + 148*3.75 + 100*6 = 7839; 503*15 = 7545.
    assert_cost(&c, 7839.0 / 1e6, 7545.0 / 1e6);
    assert!(close(c.total_usd, 0.015384));
}

#[test]
fn anthropic_write_total_without_split_is_5m() {
    let usage = Usage { input_tokens: 10, cache_creation_tokens: Some(1000), ..Usage::default() };
    let c = builtin_cost("claude-haiku-4-5", &usage);
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
    let c = builtin_cost("claude-sonnet-4-5-20250929", &usage);
    assert_cost(&c, (150_000.0 * 6.0 + 60_000.0 * 0.6) / 1e6, 1_000.0 * 22.5 / 1e6);
    assert!(close(c.total_usd, 0.9585));
    // At exactly 200k the base rates still apply.
    let at = Usage { input_tokens: 140_000, ..usage };
    let c = builtin_cost("claude-sonnet-4-5", &at);
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
    let c = builtin_cost("gpt-5.4-2026-03-05", &usage);
    assert_cost(&c, (200_000.0 * 5.0 + 100_000.0 * 0.5) / 1e6, 10.0 * 22.5 / 1e6);
}

#[test]
fn dated_price_changes_apply_from_their_day() {
    // claude-opus-4-6 lost its long-context tier on 2026-03-13.
    let usage = Usage { input_tokens: 300_000, ..Usage::default() };
    let t = PriceTable::builtin();
    let before = cost(&t, "claude-opus-4-6", &usage, days_from_date("2026-03-12").unwrap(), 0.0);
    let after = cost(&t, "claude-opus-4-6", &usage, days_from_date("2026-03-13").unwrap(), 0.0);
    assert!(close(before.input_usd, 300_000.0 * 10.0 / 1e6), "{before:?}");
    assert!(close(after.input_usd, 300_000.0 * 5.0 / 1e6), "{after:?}");
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
    let c = builtin_cost("gemini/gemini-2.5-flash", &usage);
    assert_cost(&c, (20.0 * 0.3 + 100.0 * 0.03) / 1e6, 65.0 * 2.5 / 1e6);
}

#[test]
fn web_searches_are_priced_per_thousand() {
    let usage = Usage { input_tokens: 1000, output_tokens: 100, web_search_requests: Some(3), ..Usage::default() };
    let c = builtin_cost("claude-opus-5-5", &usage);
    assert!(close(c.tools_usd, 3.0 * 10.0 / 1000.0), "{c:?}");
    assert!(close(c.total_usd, c.input_usd + c.output_usd + 0.03));
    assert!(close(c.input_usd, 1000.0 * 4.0 / 1e6));
    let gemini = builtin_cost("gemini-2.5-flash", &Usage { web_search_requests: Some(2), ..Usage::default() });
    assert!(close(gemini.tools_usd, 2.0 * 35.0 / 1000.0));
}

#[test]
fn date_suffixes_and_provider_ids_resolve_to_catalog_rows() {
    let t = PriceTable::builtin();
    let same = |alias: &str, base: &str| {
        let (a, b) = (t.lookup(alias), t.lookup(base));
        assert!(a.is_some(), "{alias}");
        assert_eq!(a.map(|q| (q.input, q.output)), b.map(|q| (q.input, q.output)), "{alias}");
    };
    same("claude-sonnet-4-5-20250929", "claude-sonnet-4-5");
    same("gpt-4o-2024-08-06", "gpt-4o");
    same("gpt-5-2025-08-07", "gpt-5");
    same("gpt-5.4-mini-2026-09-01", "gpt-5.4-mini");
    same("claude-3-7-sonnet-latest", "claude-3-7-sonnet");
    same("claude-opus-4-5@20251101", "claude-opus-4-5");
    same("claude-opus-5-5-20270101", "claude-opus-5-5");
    same("Claude-Opus-5-5", "claude-opus-5-5");
    same("gemini/gemini-2.5-pro", "gemini-2.5-pro");
    same("models/gemini-2.5-flash", "gemini-2.5-flash");
    same("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5");
    same("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku");
    // A dated row that differs from its family is matched exactly.
    assert_eq!(t.lookup("gpt-4o-2024-05-13").map(|p| p.input), Some(5.0));
    assert_eq!(t.lookup("gpt-4o-mini-2024-07-18").map(|p| p.input), Some(0.15));
}

#[test]
fn bedrock_ids_the_aws_entries_lack_use_the_first_party_row() {
    let t = PriceTable::builtin();
    let q = t.quote(Some(Provider::Bedrock), "bedrock/converse/us.anthropic.claude-3-7-sonnet-20250219-v1:0", today());
    assert_eq!(q.map(|q| (q.input, q.output)), Some((3.0, 15.0)));
    let q = t.quote(Some(Provider::Bedrock), "anthropic.claude-sonnet-4-5-20250929-v1:0", today()).unwrap();
    assert_eq!((q.input, &*q.model), (3.3, "regional.anthropic.claude-sonnet-4-5-20250929-v1:0"));
}

#[test]
fn unknown_model_policies() {
    let usage = Usage { input_tokens: 1_000_000, output_tokens: 1_000_000, ..Usage::default() };
    let fallback = PriceTable::builtin().with_unknown_model(UnknownModel::Fallback);
    let c = cost(&fallback, "claude-opus-9", &usage, today(), 0.01);
    assert_eq!(c, Cost::flat(0.01));
    assert!(!fallback.rejects(Some(Provider::Anthropic), "claude-opus-9"));

    // family: the most expensive Opus (15 in, 75 out).
    let family = PriceTable::builtin();
    assert_eq!(family.unknown_model(), UnknownModel::Family);
    let c = cost(&family, "claude-opus-9", &usage, today(), 0.01);
    assert_eq!(c.source, CostSource::Family);
    assert!(close(c.total_usd, 15.0 + 75.0), "{c:?}");
    let c = family.cost(Some(Provider::OpenAi), &["gpt-5.9-mini"], &usage, today(), 0.01);
    assert_eq!((c.source, c.priced_as.as_deref()), (CostSource::Family, Some("gpt-5.4-mini")));
    let c = family.cost(Some(Provider::Bedrock), &["us.anthropic.claude-sonnet-9-v1:0"], &usage, today(), 0.01);
    assert_eq!(c.source, CostSource::Family);
    // No family at all: the flat amount.
    assert_eq!(cost(&family, "llama-9000", &usage, today(), 0.01), Cost::flat(0.01));
    assert!(family.lookup("claude-opus-9").is_none(), "lookup reports own rows only");

    let reject = PriceTable::builtin().with_unknown_model(UnknownModel::Reject);
    assert!(reject.rejects(Some(Provider::Anthropic), "claude-opus-9"));
    assert!(!reject.rejects(Some(Provider::Anthropic), "claude-opus-5-5-20270101"));
    assert!(!reject.rejects(Some(Provider::Bedrock), "eu.anthropic.claude-opus-5-5-v1:0"));
}

#[test]
fn the_answering_model_is_priced_first_then_the_one_asked_for() {
    let usage = Usage { input_tokens: 1_000_000, ..Usage::default() };
    let t = PriceTable::builtin();
    // The provider answered with a dated snapshot whose row differs from the alias'.
    let c = t.cost(Some(Provider::OpenAi), &["gpt-4o-2024-05-13", "gpt-4o"], &usage, today(), 0.0);
    assert_eq!((c.total_usd, c.priced_as.as_deref()), (5.0, Some("gpt-4o-2024-05-13")));
    // An answer the catalog does not know falls back to the model asked for, not to a guess.
    let c = t.cost(Some(Provider::Anthropic), &["claude-opus-9-20300101", "claude-opus-5-5"], &usage, today(), 0.0);
    assert_eq!((c.source, c.total_usd), (CostSource::Table, 4.0));
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
    let c = cost(&t, "my-claude", &usage, today(), 0.0);
    assert_cost(&c, (100.0 * 4.0 + 1000.0 * 0.4 + 100.0 * 5.0 + 100.0 * 8.0) / 1e6, 10.0 * 8.0 / 1e6);
    // Elsewhere a missing cache price is the input price.
    let usage =
        Usage { input_tokens: 100, cache_read_tokens: Some(40), input_includes_cache: true, ..Usage::default() };
    let c = cost(&t, "gpt-4o", &usage, today(), 0.0);
    assert_cost(&c, 100.0 * 1.0 / 1e6, 0.0);
    // Overrides survive a catalog swap.
    let swapped = t.with_catalog(Catalog::parse(BUILTIN_CATALOG.as_bytes()).unwrap());
    assert_eq!(swapped.lookup("gpt-4o").map(|p| p.input), Some(1.0));
}

#[test]
fn override_long_context_scales_missing_tier_cache_prices() {
    let p: ModelPrice = serde_json::from_str(
        r#"{"input":1,"output":2,"cache_read":0.1,"long_context":{"threshold_tokens":1000,"input":2,"output":4}}"#,
    )
    .unwrap();
    let t = PriceTable::builtin().with_overrides([("m".to_string(), p)]);
    let usage =
        Usage { input_tokens: 1100, cache_read_tokens: Some(600), input_includes_cache: true, ..Usage::default() };
    let c = cost(&t, "m", &usage, today(), 0.0);
    // 1100 > 1000: tier input 2, read scaled 0.1 * 2 / 1 = 0.2.
    assert_cost(&c, (500.0 * 2.0 + 600.0 * 0.2) / 1e6, 0.0);
}

#[test]
fn override_rows_are_parsed_strictly() {
    assert!(serde_json::from_str::<ModelPrice>(r#"{"input":1,"output":2,"cached":0.5}"#).is_err());
    let p: ModelPrice =
        serde_json::from_str(r#"{"input":1,"output":2,"long_context":{"threshold_tokens":1000,"input":2,"output":4}}"#)
            .unwrap();
    assert_eq!(p.long_context.map(|lc| lc.threshold_tokens), Some(1000));
}

#[test]
fn the_memo_stays_bounded() {
    let t = PriceTable::builtin();
    for i in 0..(MEMO_MAX + 10) {
        let _ = t.quote(Some(Provider::OpenAi), &format!("gpt-unknown-{i}"), today());
    }
    assert!(t.memo.borrow().iter().all(|m| m.len() <= MEMO_MAX));
}

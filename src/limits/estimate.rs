//! The cost reserved before a call, and USD ⇄ micro-USD.

/// Output tokens assumed when the request sets no `max_tokens` (or equivalent).
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 4096;

/// Bytes per input token assumed from the request body's size.
const BYTES_PER_TOKEN: u64 = 4;

/// Estimated cost of a call, reserved in every window before forwarding:
/// `ceil(input_bytes / 4)` input tokens at the input price plus
/// `max_output_tokens` (or [`DEFAULT_MAX_OUTPUT_TOKENS`]) at the output price,
/// prices in USD per 1M tokens.
///
/// Estimation error, which bounds the overspend (see the module docs):
/// - Input: the whole body counts, JSON syntax and all; English runs about
///   4 characters per token, so text prompts are usually overestimated. Cached
///   input is priced as uncached (overestimate). Underestimates: base64 images
///   or files priced per tile rather than per byte, tool definitions expanded
///   by the provider, long-context price tiers.
/// - Output: `max_tokens` is an upper bound, so the output is overestimated
///   unless it is absent and the answer is longer than the default (reasoning
///   models, for which `max_completion_tokens` includes hidden reasoning), or
///   a reasoning model bills thinking beyond the cap.
///
/// Non-finite or negative prices count as 0.
pub fn estimate_usd(
    input_bytes: u64,
    max_output_tokens: Option<u64>,
    price_in_per_m: f64,
    price_out_per_m: f64,
) -> f64 {
    let price = |p: f64| if p.is_finite() && p > 0.0 { p } else { 0.0 };
    let input_tokens = input_bytes.div_ceil(BYTES_PER_TOKEN) as f64;
    let output_tokens = max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS) as f64;
    (input_tokens * price(price_in_per_m) + output_tokens * price(price_out_per_m)) / 1e6
}

/// USD → micro-USD, rounded to nearest; negative and non-finite amounts are 0.
pub fn usd_to_micro(usd: f64) -> i64 {
    to_micro(usd, f64::round)
}

/// USD → micro-USD rounded up (for reservations: never reserve less than estimated).
pub fn usd_to_micro_ceil(usd: f64) -> i64 {
    to_micro(usd, f64::ceil)
}

fn to_micro(usd: f64, round: fn(f64) -> f64) -> i64 {
    if !(usd.is_finite() && usd > 0.0) {
        return 0;
    }
    // `as` saturates; amounts above ~9.2e12 USD are clamped.
    round(usd * 1e6) as i64
}

pub fn micro_to_usd(micro: i64) -> f64 {
    micro as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn estimate_from_bytes_and_max_tokens() {
        // 4000 bytes ≈ 1000 tokens at $3/M + 500 tokens at $15/M.
        assert!(close(estimate_usd(4000, Some(500), 3.0, 15.0), 0.003 + 0.0075));
        // Bytes round up to whole tokens.
        assert!(close(estimate_usd(1, Some(0), 1e6, 0.0), 1.0));
        // No max_tokens: the default output.
        assert!(close(estimate_usd(0, None, 3.0, 10.0), 4096.0 * 10.0 / 1e6));
        assert_eq!(estimate_usd(0, Some(0), 3.0, 15.0), 0.0);
    }

    #[test]
    fn bad_prices_count_as_zero() {
        assert_eq!(estimate_usd(400, Some(10), f64::NAN, -1.0), 0.0);
        assert!(close(estimate_usd(400, Some(10), f64::INFINITY, 1e6), 10.0));
    }

    #[test]
    fn micro_conversions() {
        assert_eq!(usd_to_micro(1.5), 1_500_000);
        assert_eq!(usd_to_micro(0.0000004), 0);
        assert_eq!(usd_to_micro_ceil(0.0000004), 1);
        assert_eq!(usd_to_micro_ceil(0.0000014), 2);
        assert_eq!(usd_to_micro(0.1 + 0.2), 300_000);
        for bad in [-1.0, f64::NAN, f64::NEG_INFINITY, f64::INFINITY] {
            assert_eq!(usd_to_micro(bad), 0);
            assert_eq!(usd_to_micro_ceil(bad), 0);
        }
        assert_eq!(micro_to_usd(2_500_000), 2.5);
        assert_eq!(micro_to_usd(-1), -0.000001);
    }
}

//! Caller authentication (`auth`). Input: `<authorization>\n<x-api-key>\n<auth-service body>`,
//! where a header line `-` means "header absent"; the status comes from the
//! input's length.
//!
//! - `credentials`: an accepted key is a well-formed `phx_`/`pha_` token, the
//!   same in both headers when both are sent, and hashes to 64 lowercase hex
//!   digits; a refusal is a 401 whose message never echoes the key.
//! - `lookup_result`: 200 + principal JSON is `Found`, 404 `Unknown`,
//!   anything else `Failed` with a one-line reason.
//! - `encode_shared`/`decode_shared`: a found principal round-trips through
//!   the shared-data encoding until it expires; any bytes decode without panic.

use llm_gateway::auth::{credentials, decode_shared, encode_shared, lookup_result, Lookup, TOKEN_PREFIXES};

fn header(line: &[u8]) -> Option<String> {
    (line != b"-").then(|| String::from_utf8_lossy(line).into_owned())
}

/// Whether a message may have echoed `token`: only tokens with a digit are
/// checked, since no fixed message contains one.
fn echoes(message: &str, token: &str) -> bool {
    let t = token.trim();
    let t = t.split_once(' ').map_or(t, |(_, rest)| rest.trim());
    t.len() >= 6 && t.bytes().any(|b| b.is_ascii_digit()) && message.contains(t)
}

pub fn run(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let authorization = header(parts.next().unwrap_or_default());
    let x_api_key = header(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();

    match credentials(authorization.as_deref(), x_api_key.as_deref()) {
        Ok(token) => {
            let hash = token.hash();
            assert_eq!(hash.len(), 64);
            assert!(hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "hash {hash}");
            assert!(!format!("{token:?}").contains("ph"), "Debug shows the token");
            let bearer = authorization.as_deref().map(|a| a.trim().split_once(' ').map_or("", |(_, t)| t.trim()));
            let key = x_api_key.as_deref().map(str::trim);
            let t = match (bearer, key) {
                (Some(a), Some(b)) => {
                    assert_eq!(a, b, "different keys accepted");
                    a
                }
                (Some(t), None) | (None, Some(t)) => t,
                (None, None) => panic!("a key accepted without any header"),
            };
            assert!(TOKEN_PREFIXES.iter().any(|p| t.starts_with(p)), "accepted {t:?}");
            assert!(t.len() > 4 && t.len() <= 512, "accepted {t:?}");
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)), "accepted {t:?}");
        }
        Err(e) => {
            assert_eq!(e.kind.status(), 401);
            for h in [&authorization, &x_api_key].into_iter().flatten() {
                assert!(!echoes(&e.message, h), "error message echoes the key: {:?}", e.message);
            }
        }
    }

    let status = [200, 200, 404, 0, 500, 503][data.len() % 6];
    match lookup_result(status, body) {
        Lookup::Found(principal) => {
            assert_eq!(status, 200);
            let now = u64::from(data.first().copied().unwrap_or(0)) * 1_000;
            let expires = now + 60_000;
            let shared = encode_shared(expires, body);
            assert_eq!(decode_shared(&shared, now), Some((principal, expires)), "shared-data round trip");
            assert_eq!(decode_shared(&shared, expires), None, "expired entry decoded");
        }
        Lookup::Unknown => assert_eq!(status, 404),
        Lookup::Failed(reason) => {
            assert_ne!(status, 404);
            assert!(!reason.contains('\n'), "multi-line failure reason {reason:?}");
        }
    }
    let _ = decode_shared(data, 1_000);
}

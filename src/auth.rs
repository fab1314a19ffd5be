//! Caller authentication: credentials, the auth-service contract, scopes and
//! products, and the principal cache.
//!
//! The raw token never leaves the filter: the auth service is asked for
//! `sha256_hex(token)`. Answers are cached per VM, positive for `ttl`, negative
//! for `negative_ttl`; positive answers are also shared across the Envoy
//! workers (through shared data) by the adapter. Negative answers stay local so
//! random keys cannot grow the process-wide store.

use std::collections::HashMap;
use std::rc::Rc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::errors::{ApiError, ErrorKind};
use crate::wire::header_pairs::Headers;

/// Accepted token prefixes: personal API keys and OAuth access tokens.
pub const TOKEN_PREFIXES: [&str; 2] = ["phx_", "pha_"];
const MAX_TOKEN_LEN: usize = 512;

/// What the auth service answers for a known key. Unknown fields are ignored
/// so the service can add fields without breaking deployed filters.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Principal {
    /// The team (PostHog project) the key belongs to; attribution and limits key on it.
    pub team_id: i64,
    /// The key owner's user id.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// The key owner's analytics id: the event's `distinct_id` when the client names no end user.
    #[serde(default)]
    pub distinct_id: Option<String>,
    /// Granted scopes; the configured `required_scope` must be among them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Products the key may call; `null` or absent means all.
    #[serde(default)]
    pub products: Option<Vec<String>>,
    /// Per-team and per-user limit overrides (rate limits).
    #[serde(default)]
    pub limits: Option<serde_json::Value>,
    /// Monthly budget in USD for the team (budget guard).
    #[serde(default)]
    pub monthly_budget_usd: Option<f64>,
    /// Team opted in to Save Mode cost controls.
    #[serde(default)]
    pub cost_controls: Option<bool>,
}

/// A bearer credential, validated but not yet looked up.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Lower-case hex SHA-256: the only form of the key that leaves the filter.
    pub fn hash(&self) -> String {
        sha256_hex(&self.0, 64)
    }
}

/// The first `chars` (up to 64) lowercase hex digits of the SHA-256 of `s`.
pub fn sha256_hex(s: &str, chars: usize) -> String {
    let mut hex = String::with_capacity(chars);
    for b in Sha256::digest(s.as_bytes()).iter().take(chars.div_ceil(2)) {
        // Both nibbles are < 16, so `from_digit` always answers.
        hex.extend([b >> 4, b & 0x0f].map(|n| char::from_digit(u32::from(n), 16).unwrap_or('0')));
    }
    hex.truncate(chars);
    hex
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Authentication, message)
}

/// The credential of a request with these (lower-case) headers. A credential
/// header sent twice is refused rather than one copy picked silently.
pub fn request_credentials(headers: &Headers) -> Result<Token, ApiError> {
    let values = |name: &'static str| headers.iter().filter(move |(k, _)| *k == name).map(|(_, v)| v);
    if values("authorization").nth(1).is_some() || values("x-api-key").nth(1).is_some() {
        return Err(unauthorized("Send one credential: the request repeats a credential header"));
    }
    credentials(values("authorization").next(), values("x-api-key").next())
}

/// Reads the credential from `Authorization: Bearer …` or `x-api-key`.
/// Both may be sent (SDKs do) but must then carry the same token.
pub fn credentials(authorization: Option<&str>, x_api_key: Option<&str>) -> Result<Token, ApiError> {
    let from_bearer = match authorization {
        None => None,
        Some(v) => {
            let (scheme, rest) = v.trim().split_once(' ').unwrap_or((v.trim(), ""));
            if !scheme.eq_ignore_ascii_case("bearer") || rest.trim().is_empty() {
                return Err(unauthorized("Authorization header must be 'Bearer <api key>'"));
            }
            Some(rest.trim())
        }
    };
    let from_header = x_api_key.map(str::trim);
    let token = match (from_bearer, from_header) {
        (None, None) => {
            return Err(unauthorized("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"))
        }
        (Some(a), Some(b)) if a != b => {
            return Err(unauthorized("Authorization and x-api-key carry different keys"));
        }
        (Some(t), _) | (None, Some(t)) => t,
    };
    if !TOKEN_PREFIXES.iter().any(|p| token.starts_with(p)) {
        return Err(unauthorized("API key must be a personal API key (phx_…) or an OAuth access token (pha_…)"));
    }
    let well_formed = token.len() <= MAX_TOKEN_LEN
        && token.len() > 4
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !well_formed {
        return Err(unauthorized("Malformed API key"));
    }
    Ok(Token(token.to_string()))
}

/// What the auth service's reply means.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    Found(Principal),
    Unknown,
    /// Anything else: the service is down, slow, or answered garbage. Auth fails closed.
    Failed(String),
}

/// Interprets the auth service's answer (`status` 0 = no response or timeout).
pub fn lookup_result(status: u32, body: &[u8]) -> Lookup {
    match status {
        200 => match serde_json::from_slice::<Principal>(body) {
            Ok(p) => Lookup::Found(p),
            Err(e) => Lookup::Failed(format!(
                "unparsable principal: {}",
                e.to_string().split(" at line").next().unwrap_or("")
            )),
        },
        404 => Lookup::Unknown,
        0 => Lookup::Failed("no response".into()),
        s => Lookup::Failed(format!("status {s}")),
    }
}

/// Scope and product checks: 403 when the key may not make this call.
pub fn authorize(p: &Principal, required_scope: &str, product: &str) -> Result<(), ApiError> {
    if !p.scopes.iter().any(|s| s == required_scope) {
        return Err(ApiError::new(
            ErrorKind::Permission,
            format!("API key lacks the required scope '{required_scope}'"),
        )
        .code("insufficient_scope"));
    }
    if let Some(allowed) = &p.products {
        if !allowed.iter().any(|a| a == product) {
            return Err(ApiError::new(ErrorKind::Permission, format!("API key may not call product '{product}'"))
                .code("product_not_allowed"));
        }
    }
    Ok(())
}

/// A cached answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Cached {
    Known(Rc<Principal>),
    Unknown,
}

/// Per-VM cache of auth answers, bounded in entries, with expiry.
pub struct PrincipalCache {
    entries: HashMap<String, (Cached, u64)>,
    max_entries: usize,
}

impl PrincipalCache {
    pub fn new(max_entries: usize) -> Self {
        PrincipalCache { entries: HashMap::new(), max_entries: max_entries.max(1) }
    }

    pub fn get(&mut self, hash: &str, now_ms: u64) -> Option<Cached> {
        match self.entries.get(hash) {
            Some((c, expires)) if *expires > now_ms => Some(c.clone()),
            Some(_) => {
                self.entries.remove(hash);
                None
            }
            None => None,
        }
    }

    pub fn insert(&mut self, hash: String, value: Cached, expires_ms: u64, now_ms: u64) {
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(&hash) {
            self.entries.retain(|_, (_, e)| *e > now_ms);
            if self.entries.len() >= self.max_entries {
                // Still full of live entries: drop the one closest to expiry.
                let victim = self.entries.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| k.clone());
                if let Some(k) = victim {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(hash, (value, expires_ms));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Shared-data encoding of a positive answer: `<expires_ms>\n<principal json>`.
pub fn encode_shared(expires_ms: u64, principal_json: &[u8]) -> Vec<u8> {
    let mut out = format!("{expires_ms}\n").into_bytes();
    out.extend_from_slice(principal_json);
    out
}

/// Decodes a shared-data entry if it is still fresh.
pub fn decode_shared(data: &[u8], now_ms: u64) -> Option<(Principal, u64)> {
    let split = data.iter().position(|b| *b == b'\n')?;
    let (head, rest) = data.split_at(split);
    let expires: u64 = std::str::from_utf8(head).ok()?.parse().ok()?;
    if expires <= now_ms {
        return None;
    }
    let principal = serde_json::from_slice(rest.get(1..)?).ok()?;
    Some((principal, expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_x_api_key_forms() {
        let t = credentials(Some("Bearer phx_abc123"), None).unwrap();
        assert_eq!(credentials(None, Some("phx_abc123")).unwrap(), t);
        assert_eq!(credentials(Some("bearer phx_abc123"), Some("phx_abc123")).unwrap(), t);
        assert!(credentials(Some("Bearer pha_oauth.token-1"), None).is_ok());
    }

    #[test]
    fn bad_credentials_are_401() {
        let cases = [
            (None, None, "Missing API key"),
            (Some("Basic abc"), None, "Bearer"),
            (Some("Bearer"), None, "Bearer"),
            (Some("Bearer sk-openai"), None, "phx_"),
            (None, Some("phc_project_key"), "phx_"),
            (Some("Bearer phx_a"), Some("phx_b"), "different keys"),
            (Some("Bearer phx_a b"), None, "Malformed"),
            (None, Some("phx_\u{7}x"), "Malformed"),
        ];
        for (auth, key, needle) in cases {
            let e = credentials(auth, key).unwrap_err();
            assert_eq!(e.status(), 401);
            assert!(e.message.contains(needle), "{} / {needle}", e.message);
        }
        let long = format!("phx_{}", "a".repeat(600));
        assert_eq!(credentials(None, Some(&long)).unwrap_err().status(), 401);
    }

    #[test]
    fn a_repeated_credential_header_is_401() {
        let h = |pairs: &[(&str, &str)]| -> Headers { pairs.iter().copied().collect() };
        let one = h(&[(":path", "/"), ("authorization", "Bearer phx_abc123")]);
        assert_eq!(request_credentials(&one).unwrap(), credentials(Some("Bearer phx_abc123"), None).unwrap());
        assert!(request_credentials(&h(&[("x-api-key", "phx_abc123")])).is_ok());
        for twice in [
            h(&[("authorization", "Bearer phx_abc123"), ("authorization", "Bearer phx_abc123")]),
            h(&[("x-api-key", "phx_a"), ("authorization", "Bearer phx_a"), ("x-api-key", "phx_b")]),
        ] {
            let e = request_credentials(&twice).unwrap_err();
            assert_eq!(e.status(), 401);
            assert!(e.message.contains("repeats") && !e.message.contains("phx_"), "{}", e.message);
        }
    }

    #[test]
    fn hash_is_sha256_hex_and_debug_hides_token() {
        let t = credentials(None, Some("phx_test")).unwrap();
        // echo -n phx_test | sha256sum
        assert_eq!(t.hash(), "8ee44936f3b1c80173d2860f716f56dc44bd078df2ff5c4cb9fb4aed6f26860d");
        assert_eq!(format!("{t:?}"), "Token(..)");
    }

    #[test]
    fn lookup_results() {
        let body =
            br#"{"team_id":456,"user_id":7,"distinct_id":"d","scopes":["llm_gateway:read"],"products":null,"extra":1}"#;
        match lookup_result(200, body) {
            Lookup::Found(p) => {
                assert_eq!(p.team_id, 456);
                assert_eq!(p.products, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lookup_result(404, b""), Lookup::Unknown);
        assert!(matches!(lookup_result(200, b"{}"), Lookup::Failed(_)));
        assert!(matches!(lookup_result(200, b"<html>"), Lookup::Failed(_)));
        assert!(matches!(lookup_result(500, b""), Lookup::Failed(_)));
        assert!(matches!(lookup_result(0, b""), Lookup::Failed(_)));
    }

    #[test]
    fn scopes_and_products() {
        let p = Principal { team_id: 1, scopes: vec!["llm_gateway:read".into()], ..Default::default() };
        assert!(authorize(&p, "llm_gateway:read", "array").is_ok());
        assert_eq!(authorize(&p, "llm_gateway:write", "array").unwrap_err().status(), 403);
        let limited = Principal { products: Some(vec!["wizard".into()]), ..p };
        assert!(authorize(&limited, "llm_gateway:read", "wizard").is_ok());
        assert_eq!(authorize(&limited, "llm_gateway:read", "array").unwrap_err().status(), 403);
    }

    #[test]
    fn cache_expires_and_stays_bounded() {
        let mut c = PrincipalCache::new(2);
        c.insert("a".into(), Cached::Unknown, 100, 0);
        assert_eq!(c.get("a", 99), Some(Cached::Unknown));
        assert_eq!(c.get("a", 100), None);
        for (i, k) in ["x", "y", "z"].iter().enumerate() {
            c.insert(k.to_string(), Cached::Unknown, 1000 + i as u64, 0);
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("x", 0), None, "closest to expiry is evicted");
        assert!(c.get("z", 0).is_some());
    }

    #[test]
    fn shared_encoding_round_trips_and_expires() {
        let data = encode_shared(500, br#"{"team_id":3,"scopes":[]}"#);
        assert_eq!(decode_shared(&data, 100).unwrap().0.team_id, 3);
        assert!(decode_shared(&data, 500).is_none());
        assert!(decode_shared(b"garbage", 0).is_none());
    }
}

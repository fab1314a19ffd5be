//! The request bodies and principals most tests send.
use serde_json::{json, Value};

use crate::stack::merge;

/// A one-message Chat Completions body.
pub fn chat(model: &str, stream: bool) -> String {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

/// A team's principal with the gateway's read scope, `extra` merged over it.
pub fn principal(team: i64, extra: Value) -> Value {
    let mut p = json!({"team_id": team, "distinct_id": format!("owner-{team}"), "scopes": ["llm_gateway:read"]});
    merge(&mut p, extra);
    p
}

//! Request bodies: valid Chat Completions JSON padded to an exact size with a
//! filler system message.

use crate::Args;

const HEAD: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":""#;
const FILLER: &str = "You are a helpful assistant. Answer briefly and cite the context below. ";

/// A chat request of exactly `bytes` bytes (or the smallest valid one when
/// `bytes` is smaller than that). The filler is plain ASCII with no quotes or
/// escapes, so the body's fields are easy to find and cheap to parse.
pub fn chat(bytes: usize, stream: bool) -> Vec<u8> {
    let tail = format!(
        r#""}},{{"role":"user","content":"Say hello."}}],"max_tokens":16,"stream":{}}}"#,
        if stream { "true" } else { "false" }
    );
    let fill = bytes.saturating_sub(HEAD.len() + tail.len());
    let mut out = String::with_capacity(bytes);
    out.push_str(HEAD);
    out.extend(FILLER.chars().cycle().take(fill));
    out.push_str(&tail);
    out.into_bytes()
}

pub fn main(args: &[String]) -> Result<(), String> {
    let a = Args::parse(args, &["--stream"])?;
    a.only(&["--body-bytes", "--stream"])?;
    let body = chat(a.get("--body-bytes", 1024)?, a.has("--stream"));
    use std::io::Write;
    std::io::stdout().write_all(&body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_json_of_the_exact_size() {
        for size in [1024, 16 * 1024, 256 * 1024] {
            for stream in [false, true] {
                let body = chat(size, stream);
                assert_eq!(body.len(), size);
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["model"], "gpt-4o-mini");
                assert_eq!(v["stream"], stream);
                assert_eq!(v["messages"][1]["content"], "Say hello.");
            }
        }
    }
}

//! `UsageChunkStripper` undoes `stream_options.include_usage` exactly.
//!
//! The input describes an OpenAI Chat stream (chunks with arbitrary text,
//! keys in any order, optional spacing, comments, `[DONE]`, any of the three
//! line ends). It is rendered twice, as the provider would send it without
//! and with `include_usage` (a `"usage":null` member in every chunk, at any
//! position, and a final usage-only chunk with `"choices":[]`). Stripping
//! the second must give the first byte for byte, however it is chunked.

use crate::{pieces, Rng};
use arbitrary::Arbitrary;
use llm_gateway::usage::UsageChunkStripper;
use llm_gateway::wire::stream::Transform;
use serde_json::json;

#[derive(Arbitrary, Debug)]
enum Event {
    Chunk {
        content: Option<String>,
        role: bool,
        finish: Option<String>,
        /// An extra top-level member (skipped if it is named `usage`).
        extra: Option<(String, String)>,
        /// Where `"usage":null` goes among the members.
        usage_at: u8,
        /// Spaces around the `:` of the usage member (whitespace outside the
        /// member is kept by design, so it is not varied).
        spaced: bool,
        /// An `event:` or `id:` line before the data line.
        field: Option<bool>,
    },
    Comment(String),
    Done,
}

#[derive(Arbitrary, Debug)]
pub struct Stream {
    eol: u8,
    events: Vec<Event>,
    usage_chunk: bool,
    done: bool,
    prompt_tokens: u32,
    completion_tokens: u32,
}

fn render(s: &Stream, with_usage: bool) -> Vec<u8> {
    let eol = match s.eol % 3 {
        0 => "\n",
        1 => "\r\n",
        _ => "\r",
    };
    let mut out = String::new();
    for e in &s.events {
        match e {
            Event::Chunk { content, role, finish, extra, usage_at, spaced, field } => {
                let mut delta = serde_json::Map::new();
                if *role {
                    delta.insert("role".into(), "assistant".into());
                }
                if let Some(c) = content {
                    delta.insert("content".into(), c.as_str().into());
                }
                let choice = json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
                let mut members: Vec<(String, String)> = vec![
                    (r#""id""#.into(), r#""chatcmpl-fuzz""#.into()),
                    (r#""object""#.into(), r#""chat.completion.chunk""#.into()),
                    (r#""created""#.into(), "1741569952".into()),
                    (r#""model""#.into(), r#""gpt-4o-mini""#.into()),
                    (r#""choices""#.into(), choice.to_string()),
                ];
                if let Some((k, v)) = extra.as_ref().filter(|(k, _)| k != "usage" && !members_has(k)) {
                    members.push((json!(k).to_string(), json!(v).to_string()));
                }
                if with_usage {
                    let at = usize::from(*usage_at) % (members.len() + 1);
                    let value = if *spaced { " : null" } else { ":null" };
                    members.insert(at, (r#""usage""#.into(), value.into()));
                }
                let body: Vec<String> = members
                    .iter()
                    .map(|(k, v)| if v.starts_with([' ', ':']) { format!("{k}{v}") } else { format!("{k}:{v}") })
                    .collect();
                match field {
                    Some(true) => out.push_str(&format!("event: chunk{eol}")),
                    Some(false) => out.push_str(&format!("id: 7{eol}")),
                    None => {}
                }
                out.push_str(&format!("data: {{{}}}{eol}{eol}", body.join(",")));
            }
            Event::Comment(text) => {
                let text: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
                out.push_str(&format!(":{text}{eol}{eol}"));
            }
            Event::Done => out.push_str(&format!("data: [DONE]{eol}{eol}")),
        }
    }
    if with_usage && s.usage_chunk {
        let usage = json!({"prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens,
            "total_tokens": u64::from(s.prompt_tokens) + u64::from(s.completion_tokens)});
        let last = json!({"id": "chatcmpl-fuzz", "object": "chat.completion.chunk", "created": 1741569952,
            "model": "gpt-4o-mini", "choices": [], "usage": usage});
        out.push_str(&format!("data: {last}{eol}{eol}"));
    }
    if s.done {
        out.push_str(&format!("data: [DONE]{eol}{eol}"));
    }
    out.into_bytes()
}

fn members_has(k: &str) -> bool {
    ["id", "object", "created", "model", "choices"].contains(&k)
}

pub fn run(s: Stream) {
    let without = render(&s, false);
    let with = render(&s, true);
    let mut rng = Rng::new(&with);
    for max_cuts in [0, 3, 16] {
        let mut stripper = UsageChunkStripper::default();
        let mut out = Vec::new();
        for chunk in pieces(&with, &mut rng, max_cuts) {
            out.extend(stripper.feed(chunk));
        }
        out.extend(stripper.finish());
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&without),
            "stripping the include_usage stream did not give the plain one"
        );
    }
}

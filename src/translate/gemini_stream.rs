//! Gemini's OpenAI-compatible endpoint streams tool calls unlike OpenAI: each
//! call arrives whole in one delta without `index`, and the turn ends with
//! `finish_reason: "stop"` (googleapis/python-genai#2868). OpenAI clients
//! (the SDK's stream helper, agent loops waiting for `tool_calls`) need both.
//! This rewrites only the events that need it; every other event passes as sent.

use serde_json::Value;

use crate::wire::stream::{push_data, EventHandler, Next};
use crate::wire::SseEvent;

#[derive(Default)]
pub struct GeminiChatFix {
    next_index: u64,
    saw_tool_calls: bool,
}

impl EventHandler for GeminiChatFix {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Next {
        let fixed = self.fix(&event.data);
        push_data(out, fixed.as_deref().unwrap_or(&event.data));
        Next::Continue
    }
}

impl GeminiChatFix {
    /// The chunk rewritten, or `None` when it is fine as it is.
    fn fix(&mut self, data: &str) -> Option<String> {
        if !(data.contains("tool_calls") || self.saw_tool_calls && data.contains("\"stop\"")) {
            return None;
        }
        let mut chunk: Value = serde_json::from_str(data).ok()?;
        let mut changed = false;
        for choice in chunk.get_mut("choices")?.as_array_mut()? {
            if let Some(calls) = choice.pointer_mut("/delta/tool_calls").and_then(Value::as_array_mut) {
                for call in calls {
                    self.saw_tool_calls = true;
                    if call.get("index").is_none_or(Value::is_null) {
                        call["index"] = self.next_index.into();
                        self.next_index += 1;
                        changed = true;
                    }
                }
            }
            if self.saw_tool_calls && choice.get("finish_reason").and_then(Value::as_str) == Some("stop") {
                choice["finish_reason"] = "tool_calls".into();
                changed = true;
            }
        }
        changed.then(|| chunk.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::stream::{Sse, Transform};

    #[test]
    fn adds_indexes_and_fixes_the_finish_reason() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"b\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        for split in 0..stream.len() {
            let mut f = Sse::new(GeminiChatFix::default());
            let (a, b) = stream.as_bytes().split_at(split);
            let mut out = f.feed(a);
            out.extend(f.feed(b));
            out.extend(f.finish());
            let text = String::from_utf8(out).unwrap();
            let chunks: Vec<Value> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter(|d| *d != "[DONE]")
                .map(|d| serde_json::from_str(d).unwrap())
                .collect();
            assert_eq!(chunks[1]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
            assert_eq!(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
            assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
            assert!(text.starts_with("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"));
            assert!(text.ends_with("data: [DONE]\n\n"));
        }
    }

    #[test]
    fn plain_text_streams_pass_unchanged() {
        let stream =
            "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let mut f = Sse::new(GeminiChatFix::default());
        let mut out = f.feed(stream.as_bytes());
        out.extend(f.finish());
        assert_eq!(String::from_utf8(out).unwrap(), stream);
    }
}

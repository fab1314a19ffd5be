//! OpenAI Chat Completions (and Gemini's OpenAI-compatible endpoint).
//!
//! JSON: `usage`, `model`, `choices[].message.content`, `error`. SSE: data-only
//! `chat.completion.chunk`s; `usage` is non-null only on the last chunk (with
//! `stream_options.include_usage`); text is in `choices[].delta.content`; an
//! in-stream error is a data object with `error`; `[DONE]` ends the stream.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::sink::Sink;
use crate::wire::json::error_message;
use crate::wire::lenient::{Content, Count, Filled, Items, Obj, Str};
use crate::wire::{usage, SseEvent};

/// A body or a chunk, read in one pass (see `crate::wire::lenient`).
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    model: Str<'a>,
    #[serde(borrow, default)]
    choices: Items<Obj<Choice<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: Count,
    #[serde(borrow, default)]
    message: Obj<Message<'a>>,
    #[serde(borrow, default)]
    delta: Obj<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Content<'a>,
    #[serde(borrow, default)]
    refusal: Str<'a>,
    #[serde(default)]
    tool_calls: Filled,
    #[serde(borrow, default)]
    reasoning_content: Str<'a>,
}

fn read(chunk: Chunk, sink: &mut Sink) {
    if let Some(message) = error_message(chunk.error) {
        sink.error(&message);
    }
    if let Some(model) = chunk.model.0 {
        sink.model(&model);
    }
    if let Some(u) = chunk.usage.and_then(|raw| usage::chat(Some(raw))) {
        sink.usage = Some(u);
    }
    for Obj(choice) in chunk.choices.0 {
        // Only the first choice's text is kept; n > 1 would interleave.
        let Some(choice) = choice.filter(|c| c.index.0.unwrap_or(0) == 0) else {
            continue;
        };
        let Some(m) = choice.message.0.or(choice.delta.0) else {
            continue;
        };
        if let Some(text) = m.content.0 {
            sink.text(&text);
        }
        let refusal = m.refusal.0.is_some_and(|r| !r.is_empty());
        let reasoning = m.reasoning_content.0.is_some_and(|r| !r.is_empty());
        if refusal || reasoning || m.tool_calls.0 {
            sink.token();
        }
    }
}

pub(super) fn body(body: &[u8], sink: &mut Sink) -> Result<(), serde_json::Error> {
    let chunk: Chunk = serde_json::from_slice(body)?;
    read(chunk, sink);
    Ok(())
}

pub(super) fn event(event: &SseEvent, sink: &mut Sink) {
    if event.data.trim() == "[DONE]" {
        return;
    }
    if let Ok(chunk) = serde_json::from_str::<Chunk>(&event.data) {
        read(chunk, sink);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{every_split, finish_body};
    use super::super::Usage;
    use crate::wire::Api;

    const WIRE: Api = Api::Chat;

    #[test]
    fn json_body_with_cached_and_reasoning_tokens() {
        let body = br#"{"id":"chatcmpl-B9","object":"chat.completion","created":1741569952,"model":"gpt-5.4",
 "choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I assist you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],
 "usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,
          "prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},
          "completion_tokens_details":{"reasoning_tokens":192,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},
 "service_tier":"default"}"#;
        let out = finish_body(WIRE, body);
        assert_eq!(
            out.usage,
            Some(Usage {
                input_tokens: 2006,
                output_tokens: 300,
                cache_read_tokens: Some(1920),
                reasoning_tokens: Some(192),
                input_includes_cache: true,
                ..Usage::default()
            })
        );
        assert_eq!(out.served_model.as_deref(), Some("gpt-5.4"));
        assert_eq!(out.output_text, "Hello! How can I assist you today?");
        assert!(out.first_token);
        assert_eq!(out.error, None);
    }

    #[test]
    fn usage_without_details_has_no_cache_fields() {
        let body = br#"{"model":"gemini-2.5-flash","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29}}"#;
        let usage = finish_body(WIRE, body).usage.unwrap();
        assert_eq!(usage.cache_read_tokens, None);
        assert_eq!(usage.reasoning_tokens, None);
        assert_eq!((usage.input_tokens, usage.output_tokens), (19, 10));
    }

    #[test]
    fn error_body() {
        let body = br#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let out = finish_body(WIRE, body);
        assert_eq!(out.error.as_deref(), Some("Incorrect API key provided."));
        assert_eq!(out.usage, None);
        assert_eq!(out.problem, None);
    }

    const STREAM: &[u8] = b"data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" w\xC3\xB6rld\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn stream_usage_from_the_last_chunk_at_every_split() {
        let out = every_split(WIRE, STREAM);
        assert_eq!(
            out.usage,
            Some(Usage {
                input_tokens: 19,
                output_tokens: 10,
                cache_read_tokens: Some(0),
                reasoning_tokens: Some(0),
                input_includes_cache: true,
                ..Usage::default()
            })
        );
        assert_eq!(out.output_text, "Hello wörld");
        assert_eq!(out.served_model.as_deref(), Some("gpt-4o-mini"));
        assert!(out.first_token);
    }

    #[test]
    fn first_token_flips_on_the_first_content_delta() {
        let mut t = super::super::UsageTracker::new(WIRE, true);
        let (head, _) = STREAM.split_at(STREAM.windows(5).position(|w| w == b"Hello").unwrap());
        assert!(!t.feed(head).first_token);
        assert!(!t.saw_first_token());
        assert!(t.feed(b"Hello\"},\"logprobs\":null}]}\n\n").first_token);
        assert!(t.saw_first_token());
        assert!(!t.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n").first_token);
    }

    #[test]
    fn tool_call_delta_is_a_first_token() {
        let stream = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\"}}]}}]}\n\n";
        let out = every_split(WIRE, stream);
        assert!(out.first_token);
        assert_eq!(out.output_text, "");
    }

    #[test]
    fn members_of_unexpected_types_skip_themselves_not_the_chunk() {
        let stream = b"data: {\"model\":7,\"choices\":[\"junk\",{\"index\":\"x\",\"delta\":5},{\"index\":0,\"delta\":{\"content\":[{\"text\":\"Hi\"},{\"type\":\"image\"}],\"refusal\":3,\"tool_calls\":{}}}],\"usage\":null}\n\n\
data: {\"model\":\"gpt-5\",\"choices\":{},\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n";
        let out = every_split(WIRE, stream);
        assert_eq!(out.output_text, "Hi");
        assert_eq!(out.served_model.as_deref(), Some("gpt-5"));
        assert_eq!(out.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((3, 1)));
    }

    #[test]
    fn mid_stream_error() {
        let stream = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n\
data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";
        let out = every_split(WIRE, stream);
        assert_eq!(out.error.as_deref(), Some("The server had an error while processing your request."));
        assert_eq!(out.usage, None);
        assert_eq!(out.output_text, "Hi");
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        let stream = b"this is not sse\n\ndata: {\"truncated\": \n\n: comment\n\nfoo: bar\r\r\ndata: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n";
        let out = every_split(WIRE, stream);
        assert_eq!(out.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((3, 4)));
        for cut in 0..STREAM.len() {
            let (head, _) = STREAM.split_at(cut);
            let _ = finish_body(WIRE, head);
        }
    }
}

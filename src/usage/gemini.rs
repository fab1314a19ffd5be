//! Gemini native `generateContent` / `streamGenerateContent?alt=sse`.
//!
//! Each body, and each SSE `data:` event, is a `GenerateContentResponse`:
//! `usageMetadata` (`promptTokenCount`, `candidatesTokenCount`,
//! `cachedContentTokenCount`, `thoughtsTokenCount`), `modelVersion`,
//! `candidates[].content.parts[].text` (parts with `"thought": true` are
//! reasoning). Whether every chunk carries cumulative usage is unverified, so
//! the last `usageMetadata` seen wins. Without `alt=sse` the stream is one
//! JSON array of responses, which the body reader also accepts.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{array, count, decode, error_message, string};
use super::tracker::Sink;
use super::{SseEvent, Usage};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    #[serde(borrow, default)]
    candidates: Option<&'a RawValue>,
    #[serde(borrow, default)]
    usage_metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model_version: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Candidate<'a> {
    #[serde(borrow, default)]
    index: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "groundingMetadata")]
    grounding_metadata: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Grounding<'a> {
    #[serde(borrow, default)]
    web_search_queries: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    parts: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    thought: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function_call: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    #[serde(borrow, default)]
    prompt_token_count: Option<&'a RawValue>,
    #[serde(borrow, default)]
    candidates_token_count: Option<&'a RawValue>,
    #[serde(borrow, default)]
    cached_content_token_count: Option<&'a RawValue>,
    #[serde(borrow, default)]
    thoughts_token_count: Option<&'a RawValue>,
}

fn usage(raw: &RawValue) -> Option<Usage> {
    let m: Metadata = decode(Some(raw))?;
    Some(Usage {
        input_tokens: count(m.prompt_token_count).unwrap_or(0),
        output_tokens: count(m.candidates_token_count).unwrap_or(0),
        cache_read_tokens: count(m.cached_content_token_count),
        reasoning_tokens: count(m.thoughts_token_count),
        input_includes_cache: true,
        output_excludes_reasoning: true,
        ..Usage::default()
    })
}

fn read(r: &Response, sink: &mut Sink) {
    if let Some(message) = error_message(r.error) {
        sink.error(&message);
    }
    if let Some(model) = string(r.model_version) {
        sink.model(&model);
    }
    if let Some(mut u) = r.usage_metadata.and_then(usage) {
        // Searches seen with earlier usage stay counted.
        u.web_search_requests = sink.usage.as_ref().and_then(|u| u.web_search_requests);
        sink.usage = Some(u);
    }
    for candidate in array(r.candidates) {
        let Some(c) = decode::<Candidate>(Some(candidate)) else {
            continue;
        };
        // Only the first candidate's text is kept.
        if count(c.index).unwrap_or(0) != 0 {
            continue;
        }
        // Grounding with Google Search: each query it ran is billed (counted where usage is known).
        let queries = decode::<Grounding>(c.grounding_metadata).map(|g| array(g.web_search_queries).len());
        if let (Some(n @ 1..), Some(u)) = (queries, sink.usage.as_mut()) {
            u.web_search_requests = Some(n as u64);
        }
        let Some(content) = decode::<Content>(c.content) else {
            continue;
        };
        for part in array(content.parts) {
            let Some(p) = decode::<Part>(Some(part)) else {
                continue;
            };
            let thought = decode::<bool>(p.thought).unwrap_or(false);
            match string(p.text) {
                Some(text) if !thought => sink.text(&text),
                Some(text) if !text.is_empty() => sink.token(),
                _ if p.function_call.is_some() => sink.token(),
                _ => {}
            }
        }
    }
}

pub(super) fn body(body: &[u8], sink: &mut Sink) -> Result<(), serde_json::Error> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        let all: Vec<Response> = serde_json::from_slice(body)?;
        for r in &all {
            read(r, sink);
        }
        return Ok(());
    }
    let r: Response = serde_json::from_slice(body)?;
    read(&r, sink);
    Ok(())
}

pub(super) fn event(event: &SseEvent, sink: &mut Sink) {
    if let Ok(r) = serde_json::from_str::<Response>(&event.data) {
        read(&r, sink);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{every_split, finish_body};
    use super::super::{Usage, Wire};

    const WIRE: Wire = Wire::GeminiNative;

    #[test]
    fn json_body_with_cache_and_thoughts() {
        let body = br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"pondering","thought":true},{"text":"Hello"}]},"finishReason":"STOP","index":0}],
"usageMetadata":{"promptTokenCount":120,"candidatesTokenCount":40,"cachedContentTokenCount":100,"thoughtsTokenCount":25,"totalTokenCount":185},
"modelVersion":"gemini-2.5-flash"}"#;
        let out = finish_body(WIRE, body);
        assert_eq!(
            out.usage,
            Some(Usage {
                input_tokens: 120,
                output_tokens: 40,
                cache_read_tokens: Some(100),
                reasoning_tokens: Some(25),
                input_includes_cache: true,
                output_excludes_reasoning: true,
                ..Usage::default()
            })
        );
        assert_eq!(out.output_text, "Hello");
        assert_eq!(out.served_model.as_deref(), Some("gemini-2.5-flash"));
    }

    #[test]
    fn error_body() {
        let body = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;
        let out = finish_body(WIRE, body);
        assert_eq!(out.error.as_deref(), Some("API key not valid. Please pass a valid API key."));
    }

    #[test]
    fn json_array_stream_body() {
        let body = br#"[{"candidates":[{"content":{"parts":[{"text":"He"}]}}],"usageMetadata":{"promptTokenCount":8}},
{"candidates":[{"content":{"parts":[{"text":"llo"}]}}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":2,"totalTokenCount":10}}]"#;
        let out = finish_body(WIRE, body);
        assert_eq!(out.output_text, "Hello");
        assert_eq!(out.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((8, 2)));
    }

    const STREAM: &[u8] = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"totalTokenCount\": 9},\"modelVersion\": \"gemini-2.5-pro\"}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 2,\"thoughtsTokenCount\": 30,\"totalTokenCount\": 41},\"modelVersion\": \"gemini-2.5-pro\"}\r\n\r\n";

    #[test]
    fn stream_takes_the_last_usage_metadata() {
        let out = every_split(WIRE, STREAM);
        assert_eq!(
            out.usage,
            Some(Usage {
                input_tokens: 9,
                output_tokens: 2,
                reasoning_tokens: Some(30),
                input_includes_cache: true,
                output_excludes_reasoning: true,
                ..Usage::default()
            })
        );
        assert_eq!(out.output_text, "Hello");
        assert!(out.first_token);
    }

    #[test]
    fn function_call_part_is_a_first_token() {
        let stream =
            b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}}}]}}]}\n\n";
        assert!(every_split(WIRE, stream).first_token);
    }

    #[test]
    fn grounding_search_queries_are_counted() {
        let body = br#"{"candidates":[{"index":0,"content":{"parts":[{"text":"Sunny"}]},
"groundingMetadata":{"webSearchQueries":["weather paris","paris forecast"]}}],
"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":3},"modelVersion":"gemini-2.5-flash"}"#;
        assert_eq!(finish_body(WIRE, body).usage.and_then(|u| u.web_search_requests), Some(2));
        // Usage updated after the grounded chunk keeps the count.
        let stream = b"data: {\"candidates\":[{\"index\":0,\"content\":{\"parts\":[{\"text\":\"a\"}]},\"groundingMetadata\":{\"webSearchQueries\":[\"q\"]}}],\"usageMetadata\":{\"promptTokenCount\":4}}\n\ndata: {\"candidates\":[{\"index\":0,\"content\":{\"parts\":[{\"text\":\"b\"}]}}],\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":2}}\n\n";
        assert_eq!(every_split(WIRE, stream).usage.and_then(|u| u.web_search_requests), Some(1));
    }
}

//! Borrowed views of what an OpenAI Chat Completions provider (OpenAI, Gemini's
//! OpenAI-compatible endpoint) answers, as the translators read it
//! (docs/protocols/openai-chat.md): the `chat.completion` body and the
//! `chat.completion.chunk` stream event.
//!
//! Every member is optional unless the API requires it; raw members
//! (`&RawValue`) borrow from the body, and members nobody reads are skipped.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ErrorDetail, Str};

/// A `chat.completion` body (docs/protocols/openai-chat.md, Usage (non-streaming)).
#[derive(Deserialize)]
pub(crate) struct Completion<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) choices: Vec<Choice<'a>>,
    #[serde(borrow, default)]
    pub(crate) usage: Option<&'a RawValue>,
}

/// One of a `chat.completion` body's `choices`.
#[derive(Deserialize)]
pub(crate) struct Choice<'a> {
    #[serde(borrow, default)]
    pub(crate) message: Option<Message<'a>>,
    #[serde(borrow, default)]
    pub(crate) finish_reason: Option<Str<'a>>,
}

/// A `chat.completion` choice's assistant `message`.
#[derive(Deserialize)]
pub(crate) struct Message<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) refusal: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) tool_calls: Option<Vec<ToolCall<'a>>>,
}

/// One of a `chat.completion` message's `tool_calls`.
#[derive(Deserialize)]
pub(crate) struct ToolCall<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) function: Function<'a>,
}

/// A tool call's `function`, in a `chat.completion` message or an assistant message of a request.
#[derive(Deserialize)]
pub(crate) struct Function<'a> {
    #[serde(borrow)]
    pub(crate) name: Str<'a>,
    #[serde(borrow, default)]
    pub(crate) arguments: Option<Str<'a>>,
}

/// A `chat.completion.chunk` or in-stream `{"error": …}` (docs/protocols/openai-chat.md, Streaming format).
#[derive(Deserialize)]
pub(crate) struct Chunk<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) choices: Option<Vec<ChunkChoice<'a>>>,
    #[serde(borrow, default)]
    pub(crate) usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) error: Option<ErrorDetail<'a>>,
}

/// One of a chunk's `choices`.
#[derive(Deserialize)]
pub(crate) struct ChunkChoice<'a> {
    #[serde(default)]
    pub(crate) index: Option<u64>,
    #[serde(borrow, default)]
    pub(crate) delta: Option<ChoiceDelta<'a>>,
    #[serde(borrow, default)]
    pub(crate) finish_reason: Option<Str<'a>>,
}

/// A chunk choice's `delta`.
#[derive(Deserialize)]
pub(crate) struct ChoiceDelta<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) refusal: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

/// One of a delta's `tool_calls`: a call's start (`id`, `name`) or a fragment of its arguments.
#[derive(Deserialize)]
pub(crate) struct ToolCallDelta<'a> {
    #[serde(default)]
    pub(crate) index: Option<u64>,
    #[serde(borrow, default)]
    pub(crate) id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) function: Option<FunctionDelta<'a>>,
}

/// A tool call delta's `function`.
#[derive(Deserialize)]
pub(crate) struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    pub(crate) name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) arguments: Option<Str<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_tool_call_delta_and_an_error_chunk() {
        let data = r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{\"a\""}}]},"finish_reason":null}],"usage":null}"#;
        let chunk: Chunk = serde_json::from_str(data).unwrap();
        assert_eq!(chunk.id.as_deref(), Some("c1"));
        let choice = chunk.choices.unwrap().into_iter().next().unwrap();
        let call = choice.delta.unwrap().tool_calls.unwrap().into_iter().next().unwrap();
        let function = call.function.unwrap();
        assert_eq!((call.index, call.id.as_deref()), (Some(0), Some("call_1")));
        assert_eq!((function.name.as_deref(), function.arguments.as_deref()), (Some("f"), Some(r#"{"a""#)));
        let data = r#"{"error":{"message":"boom","type":"server_error","code":"server_is_overloaded"}}"#;
        let error = serde_json::from_str::<Chunk>(data).unwrap().error.unwrap();
        assert_eq!((error.kind.as_deref(), error.message.as_deref()), (Some("server_error"), Some("boom")));
        assert_eq!(error.code.map(RawValue::get), Some(r#""server_is_overloaded""#));
    }
}

//! Borrowed views of what an Anthropic Messages provider (Anthropic, and
//! Bedrock once its event stream is decoded to SSE) answers, as the
//! translators read it (docs/protocols/anthropic-messages.md): the message
//! body and the stream events.
//!
//! Every member is optional unless the API requires it; raw members
//! (`&RawValue`) borrow from the body, and members nobody reads are skipped.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ErrorDetail, Str};

/// A Messages response body (docs/protocols/anthropic-messages.md, Usage).
#[derive(Deserialize)]
pub(crate) struct Message<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) content: Vec<Block<'a>>,
    #[serde(borrow, default)]
    pub(crate) stop_reason: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) usage: Option<&'a RawValue>,
}

/// A content block of a response or of a `content_block_start` event (docs/protocols/anthropic-messages.md).
#[derive(Deserialize)]
pub(crate) struct Block<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Str<'a>,
    #[serde(borrow, default)]
    pub(crate) text: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) thinking: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) signature: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) data: Option<Str<'a>>,
}

/// A stream event's data, any type (docs/protocols/anthropic-messages.md, Streaming).
#[derive(Deserialize)]
pub(crate) struct Event<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Str<'a>,
    #[serde(borrow, default)]
    pub(crate) message: Option<StartMessage<'a>>,
    #[serde(default)]
    pub(crate) index: Option<u64>,
    #[serde(borrow, default)]
    pub(crate) content_block: Option<Block<'a>>,
    #[serde(borrow, default)]
    pub(crate) delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    pub(crate) usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) error: Option<ErrorDetail<'a>>,
}

/// The `message` of a `message_start` event.
#[derive(Deserialize)]
pub(crate) struct StartMessage<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) usage: Option<&'a RawValue>,
}

/// The `delta` of a `content_block_delta` event (text, JSON, thinking, signature) or a `message_delta` one.
#[derive(Deserialize)]
pub(crate) struct Delta<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) text: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) partial_json: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) thinking: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) signature: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) stop_reason: Option<Str<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_block_start_and_an_error_event() {
        let data = r#"{"type":"content_block_start","index":1,"content_block":{"type":"thinking","thinking":"","signature":"s"}}"#;
        let e: Event = serde_json::from_str(data).unwrap();
        let block = e.content_block.unwrap();
        assert_eq!((e.kind.as_ref(), e.index, block.kind.as_ref()), ("content_block_start", Some(1), "thinking"));
        assert_eq!((block.thinking.as_deref(), block.signature.as_deref()), (Some(""), Some("s")));
        let data = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let error = serde_json::from_str::<Event>(data).unwrap().error.unwrap();
        assert_eq!((error.kind.as_deref(), error.message.as_deref()), (Some("overloaded_error"), Some("Overloaded")));
    }
}

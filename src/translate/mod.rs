//! Translation between the client's API format and the provider's, so any
//! model can be called through any endpoint format.
//!
//! Pure code (no proxy-wasm): whole-body functions for requests, JSON
//! responses and error bodies, and incremental converters for SSE streams that
//! emit each complete output event as soon as its input event is complete and
//! hold at most one input event (the shared [`crate::wire::SseParser`]).
//!
//! | client speaks | provider speaks | request | response | stream | error body |
//! |---|---|---|---|---|---|
//! | OpenAI Chat | Anthropic Messages | [`chat_request_to_messages`] | [`messages_response_to_chat`] | [`MessagesToChat`] | [`anthropic_error_to_openai`] |
//! | Anthropic Messages | OpenAI Chat (OpenAI, Gemini) | [`messages_request_to_chat`] | [`chat_response_to_messages`] | [`ChatToMessages`] | [`openai_error_to_anthropic`] |
//! | OpenAI Responses | Anthropic Messages (Anthropic, Bedrock) | [`responses_request_to_messages`] | [`messages_response_to_responses`] | [`MessagesToResponses`] | [`anthropic_error_to_openai`] |
//! | OpenAI Responses | OpenAI Chat (Gemini) | [`responses_request_to_chat`] | [`chat_response_to_responses`] | [`ChatToResponses`] | [`openai_error_normalised`] |
//!
//! Requests are translated for a [`Target`]: the model, whose catalog entry
//! clamps the output limit and decides how a reasoning effort is expressed
//! ([`target`]). The writers of each provider format are shared
//! (`messages_out`, `chat_out`), as are the Responses reader
//! (`responses_request`) and writer (`responses_out`); provider answers are
//! read through the borrowed views in [`crate::wire::openai_chat`] and
//! [`crate::wire::anthropic`].
//!
//! Token semantics follow each client format (docs/protocols/openai-chat.md, anthropic-messages.md): an OpenAI
//! client's `prompt_tokens` (Responses `input_tokens`) includes cache reads and writes; an Anthropic
//! client's `input_tokens` excludes them. Each module's docs list its field
//! mappings and what it refuses with [`TranslateError::Unsupported`].

mod chat_out;
mod chat_to_messages;
mod chat_to_responses;
mod common;
mod errors;
mod gemini_stream;
mod messages_out;
mod messages_to_chat;
mod messages_to_responses;
mod response_to_chat;
mod response_to_messages;
mod responses_out;
mod responses_request;
mod responses_to_chat;
mod responses_to_messages;
mod stream_to_chat;
mod stream_to_messages;
pub mod target;
#[cfg(test)]
mod tests;

use std::fmt;

pub use chat_to_messages::{chat_request_to_messages, chat_request_to_messages_lexed};
pub use chat_to_responses::{chat_response_to_responses, ChatToResponses};
pub use errors::{anthropic_error_to_openai, anthropic_error_type, openai_error_normalised, openai_error_to_anthropic};
pub use gemini_stream::GeminiChatFix;
pub use messages_to_chat::{messages_request_to_chat, messages_request_to_chat_lexed};
pub use messages_to_responses::{messages_response_to_responses, MessagesToResponses};
pub use response_to_chat::messages_response_to_chat;
pub use response_to_messages::chat_response_to_messages;
pub use responses_out::ResponsesContext;
pub use responses_to_chat::{responses_request_to_chat, responses_request_to_chat_lexed};
pub use responses_to_messages::{responses_request_to_messages, responses_request_to_messages_lexed};
pub use stream_to_chat::MessagesToChat;
pub use stream_to_messages::ChatToMessages;
pub use target::Target;

/// Why a body could not be translated. Both carry a message fit for the
/// client (a request error is a 400; a response error means the provider sent
/// something its own API does not define).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TranslateError {
    /// Not the JSON the source API defines (wrong type, missing field).
    Invalid(String),
    /// A feature the target API cannot express and that cannot be dropped
    /// without changing what the client gets; the message names the field.
    Unsupported(String),
}

impl TranslateError {
    pub fn message(&self) -> &str {
        match self {
            TranslateError::Invalid(m) | TranslateError::Unsupported(m) => m,
        }
    }
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TranslateError {}

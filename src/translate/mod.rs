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
//!
//! Token semantics follow each client format (PROTOCOLS.md A, C): an OpenAI
//! client's `prompt_tokens` includes cache reads and writes; an Anthropic
//! client's `input_tokens` excludes them. Each module's docs list its field
//! mappings and what it refuses with [`TranslateError::Unsupported`].

mod chat_to_messages;
mod common;
mod errors;
mod gemini_stream;
mod messages_to_chat;
mod response_to_chat;
mod response_to_messages;
mod stream_to_chat;
mod stream_to_messages;
#[cfg(test)]
mod tests;

use std::fmt;

pub use chat_to_messages::chat_request_to_messages;
pub use errors::{anthropic_error_to_openai, anthropic_error_type, openai_error_to_anthropic};
pub use gemini_stream::GeminiChatFix;
pub use messages_to_chat::messages_request_to_chat;
pub use response_to_chat::messages_response_to_chat;
pub use response_to_messages::chat_response_to_messages;
pub use stream_to_chat::MessagesToChat;
pub use stream_to_messages::ChatToMessages;

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

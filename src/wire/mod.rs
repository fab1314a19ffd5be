//! The wire vocabulary every stage shares: which API a body speaks ([`Api`]
//! for the client, [`ProviderWire`] for the provider), the SSE parser, lenient
//! JSON readers, one borrowed usage shape per API, the borrowed views the
//! translators read provider answers through ([`openai_chat`], [`anthropic`]),
//! and the stream-transform driver the response pipeline composes.
//!
//! The protocol facts behind them are in `docs/protocols/`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

pub mod anthropic;
pub mod header_pairs;
pub mod json;
pub mod lenient;
pub mod openai_chat;
pub mod sse;
pub mod stream;
pub mod usage;

pub use sse::{SseEvent, SseParser};

/// A string that may borrow from the body.
pub(crate) type Str<'a> = Cow<'a, str>;

/// An OpenAI or Anthropic `error` object (docs/protocols/openai-chat.md and anthropic-messages.md, Errors).
#[derive(Deserialize)]
pub(crate) struct ErrorDetail<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) code: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) message: Option<Str<'a>>,
}

/// The client-facing APIs the gateway serves, one per endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// OpenAI Chat Completions.
    Chat,
    /// OpenAI Responses.
    Responses,
    /// Anthropic Messages.
    Messages,
}

impl Api {
    pub const ALL: [Api; 3] = [Api::Chat, Api::Responses, Api::Messages];

    /// The endpoint's path after the optional product prefix.
    pub fn path(self) -> &'static str {
        match self {
            Api::Chat => "/v1/chat/completions",
            Api::Responses => "/v1/responses",
            Api::Messages => "/v1/messages",
        }
    }

    /// `$ai_api_format` in events.
    pub fn event_name(self) -> &'static str {
        match self {
            Api::Chat => "openai_chat",
            Api::Responses => "openai_responses",
            Api::Messages => "anthropic_messages",
        }
    }

    /// Errors take Anthropic's shape on Messages and OpenAI's elsewhere.
    pub fn anthropic_errors(self) -> bool {
        self == Api::Messages
    }
}

/// What a provider answers in: an API plus how the provider frames or bends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderWire {
    OpenAiChat,
    OpenAiResponses,
    Anthropic,
    /// Anthropic JSON, or an AWS event stream of Anthropic events.
    Bedrock,
    /// Gemini's OpenAI-compatible Chat endpoint, whose tool-call streams need normalising.
    GeminiChat,
}

impl ProviderWire {
    /// The API whose bodies this wire carries.
    pub fn api(self) -> Api {
        match self {
            ProviderWire::OpenAiChat | ProviderWire::GeminiChat => Api::Chat,
            ProviderWire::OpenAiResponses => Api::Responses,
            ProviderWire::Anthropic | ProviderWire::Bedrock => Api::Messages,
        }
    }
}

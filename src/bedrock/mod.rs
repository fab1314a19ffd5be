//! Amazon Bedrock as a provider for Anthropic models (docs/protocols/bedrock.md).
//!
//! Bedrock's InvokeModel takes the Anthropic Messages body with small changes
//! ([`messages_to_bedrock_body`]) at [`invoke_path`], and answers with the
//! Anthropic message JSON unchanged. The streaming variant answers in AWS's
//! binary event-stream framing ([`EventStreamDecoder`]) whose `chunk` events
//! each carry one base64-encoded Anthropic streaming event;
//! [`BedrockToSse`] turns that back into Anthropic SSE so the usage tracker
//! and the translators read Bedrock streams as Anthropic ones. Pure code, no
//! proxy-wasm.

mod base64;
mod betas;
mod body;
mod crc32;
mod error;
mod event_stream;
mod path;
mod to_sse;

pub use base64::{decode as base64_decode, encode as base64_encode};
pub use betas::{bedrock_betas, with_betas};
pub use body::{messages_to_bedrock_body, BEDROCK_ANTHROPIC_VERSION};
pub use crc32::crc32;
pub use error::{bedrock_error_to_anthropic, exception_error_type};
pub use event_stream::{DecodeError, EventStreamDecoder, Header, HeaderValue, Message, MAX_MESSAGE_BYTES};
pub use path::{count_tokens_path, invoke_path};
pub use to_sse::{classify, BedrockEvent, BedrockToSse};

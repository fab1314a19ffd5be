//! A provider response on its way back to the client: usage is read from the
//! provider's own bytes, then the bytes are converted into what the client's
//! API format expects (Bedrock event-stream to SSE, Anthropic to OpenAI or
//! back, the injected usage chunk removed). Streams are converted chunk by
//! chunk; JSON bodies that need translation are converted whole.

use crate::bedrock::{bedrock_error_to_anthropic, BedrockToSse};
use crate::completion::TerminalScanner;
use crate::errors::{ApiError, ErrorKind};
use crate::translate::{
    anthropic_error_to_openai, chat_response_to_messages, chat_response_to_responses, messages_response_to_chat,
    messages_response_to_responses, openai_error_normalised, openai_error_to_anthropic, ChatToMessages,
    ChatToResponses, GeminiChatFix, MessagesToChat, MessagesToResponses, ResponsesContext,
};
use crate::usage::{Extracted, Limits, UsageChunkStripper, UsageTracker};
use crate::wire::stream::{Sse, Transform};
use crate::wire::{Api, ProviderWire};

/// How a call's response must be carried back, decided when the request is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponsePlan {
    pub client: Api,
    pub provider: ProviderWire,
    pub requested_model: String,
    /// An OpenAI client asked for the usage chunk (`stream_options.include_usage`).
    pub client_wants_usage: bool,
    /// The gateway asked for usage on the client's behalf and must remove it.
    pub strip_usage_chunk: bool,
    /// A Responses client on a translated route: what its `response` objects echo.
    pub responses: Option<ResponsesContext>,
    /// The event will carry the assistant's text (`capture.content`); otherwise
    /// none of it is kept, however long the answer.
    pub keep_output_text: bool,
}

impl ResponsePlan {
    pub fn translated(&self) -> bool {
        self.client != self.provider.api()
    }
}

enum Mode {
    /// Bytes go to the client as they came; usage is read on the way.
    PassThrough,
    /// Chunk by chunk: the provider's framing decoded to SSE (Bedrock), where
    /// usage is read, then each conversion in turn.
    Stream { decoder: Option<BedrockToSse>, stages: Vec<Box<dyn Transform>> },
    /// Held whole and translated at the end (a JSON body or an error body).
    Whole { status: u16, amzn_error_type: Option<String> },
}

pub struct ResponsePipeline {
    plan: ResponsePlan,
    tracker: UsageTracker,
    mode: Mode,
    created: u64,
    /// Watches what the client receives for its terminal event (streams only).
    terminal: Option<TerminalScanner>,
}

/// What one chunk produced.
pub struct Fed {
    /// Bytes to send instead of the chunk; `None` sends the chunk as it is.
    pub replace: Option<Vec<u8>>,
    /// The chunk carried the first content token.
    pub first_token: bool,
    /// The chunk completed the client's terminal event (see [`crate::completion`]):
    /// the call is complete once these bytes are passed on, whoever closes first.
    pub terminal: bool,
}

impl ResponsePipeline {
    /// `content_type` is the provider's; `created` stamps translated OpenAI objects.
    pub fn start(
        mut plan: ResponsePlan,
        status: u16,
        content_type: Option<&str>,
        amzn_error_type: Option<String>,
        created: u64,
    ) -> Self {
        let ct = content_type.unwrap_or("");
        let streaming = ct.starts_with("text/event-stream") || ct.starts_with("application/vnd.amazon.eventstream");
        let mut limits = Limits::default();
        if !plan.keep_output_text {
            limits.max_output_text_bytes = 0;
        }
        let tracker = UsageTracker::with_limits(plan.provider.api(), streaming && status < 400, limits);
        let mode = if status >= 400 || !streaming {
            if plan.translated() || (plan.provider == ProviderWire::Bedrock && status >= 400) {
                Mode::Whole { status, amzn_error_type }
            } else {
                Mode::PassThrough
            }
        } else {
            let decoder = (plan.provider == ProviderWire::Bedrock).then(BedrockToSse::new);
            let stages = stages(&mut plan, status, created);
            if decoder.is_none() && stages.is_empty() {
                Mode::PassThrough
            } else {
                Mode::Stream { decoder, stages }
            }
        };
        let terminal = (streaming && status < 400).then(|| TerminalScanner::new(plan.client));
        ResponsePipeline { plan, tracker, mode, created, terminal }
    }

    /// The body must be held whole (the adapter pauses until the end).
    pub fn holds_body(&self) -> bool {
        matches!(self.mode, Mode::Whole { .. })
    }

    /// The client gets other bytes than the provider sent (drop `content-length`).
    pub fn rewrites(&self) -> bool {
        !matches!(self.mode, Mode::PassThrough)
    }

    /// A content type to send instead of the provider's.
    pub fn content_type(&self) -> Option<&'static str> {
        match &self.mode {
            Mode::Stream { .. } => Some("text/event-stream"),
            Mode::Whole { .. } => Some("application/json"),
            Mode::PassThrough => None,
        }
    }

    /// One chunk of a streamed or passed-through body; `end` on the last.
    pub fn feed(&mut self, chunk: &[u8], end: bool) -> Fed {
        let ResponsePipeline { tracker, mode, terminal, .. } = self;
        let mut scan = |out: &[u8]| terminal.as_mut().is_some_and(|t| t.feed(out));
        match mode {
            Mode::PassThrough | Mode::Whole { .. } => {
                let first_token = tracker.feed(chunk).first_token;
                Fed { replace: None, first_token, terminal: scan(chunk) }
            }
            Mode::Stream { decoder, stages } => {
                // Usage is read on the provider's SSE: after the Bedrock decoder, before translation.
                let decoded = decoder.as_mut().map(|d| {
                    let mut sse = d.feed(chunk);
                    if end {
                        sse.extend(d.finish());
                    }
                    sse
                });
                let sse = decoded.as_deref().unwrap_or(chunk);
                let first_token = tracker.feed(sse).first_token;
                let out = run(stages, sse, end);
                let terminal = scan(&out);
                // A chunk the stages leave as it is (no usage member to cut, nothing for
                // Gemini's fix) stays in Envoy's buffer: neither copied back nor replaced.
                let replace = (decoded.is_some() || out != chunk).then_some(out);
                Fed { replace, first_token, terminal }
            }
        }
    }

    /// The whole held body; returns what the client gets instead, and a new
    /// status when the provider's answer could not be translated.
    pub fn finish_whole(&mut self, body: &[u8]) -> (Vec<u8>, Option<u16>) {
        self.tracker.feed(body);
        let Mode::Whole { status, amzn_error_type } = &self.mode else {
            return (body.to_vec(), None);
        };
        let status = *status;
        let client = self.plan.client;
        let model = self.plan.requested_model.as_str();
        if status >= 400 {
            let anthropic_shaped = match self.plan.provider {
                ProviderWire::Bedrock => bedrock_error_to_anthropic(status, amzn_error_type.as_deref(), body),
                ProviderWire::Anthropic => body.to_vec(),
                ProviderWire::OpenAiChat | ProviderWire::OpenAiResponses | ProviderWire::GeminiChat => {
                    let out = match client {
                        Api::Messages => openai_error_to_anthropic(status, body),
                        Api::Responses if self.plan.translated() => openai_error_normalised(status, body),
                        _ => body.to_vec(),
                    };
                    return (out, None);
                }
            };
            let out = match client {
                Api::Messages => anthropic_shaped,
                _ => anthropic_error_to_openai(status, &anthropic_shaped),
            };
            return (out, None);
        }
        // Read once: the whole body is translated once.
        let ctx = self.plan.responses.take().unwrap_or_default();
        let translated = match (client, self.plan.provider.api()) {
            (Api::Chat, Api::Messages) => messages_response_to_chat(body, model, self.created),
            (Api::Messages, Api::Chat) => chat_response_to_messages(body, model),
            (Api::Responses, Api::Messages) => messages_response_to_responses(body, &ctx, model, self.created),
            (Api::Responses, Api::Chat) => chat_response_to_responses(body, &ctx, model, self.created),
            _ => Ok(body.to_vec()),
        };
        match translated {
            Ok(out) => (out, None),
            Err(e) => {
                let msg = format!("The provider's response could not be translated: {}", e.message());
                let reply = ApiError::new(ErrorKind::BadGateway, msg).code("untranslatable_response").reply(client);
                (reply.body.into_bytes(), Some(reply.status))
            }
        }
    }

    /// What the response yielded. A translated stream the provider ended
    /// before its answer was complete is an error, as the client was told.
    pub fn finish(&mut self) -> Extracted {
        let mut extracted = self.tracker.finish();
        let cut = match &self.mode {
            Mode::Stream { stages, .. } => stages.iter().any(|s| s.incomplete()),
            _ => false,
        };
        if cut && extracted.error.is_none() {
            extracted.error = Some("The provider's stream ended before the response was complete".into());
        }
        extracted
    }
}

/// The conversions a streamed response goes through, in order.
/// A Responses client's context moves into its stage (it echoes the request's
/// instructions and tools, which can run to tens of KB).
fn stages(plan: &mut ResponsePlan, status: u16, created: u64) -> Vec<Box<dyn Transform>> {
    let mut stages: Vec<Box<dyn Transform>> = Vec::new();
    match (plan.client, plan.provider.api()) {
        (Api::Chat, Api::Messages) => stages.push(Box::new(Sse::new(MessagesToChat::new(
            &plan.requested_model,
            plan.client_wants_usage,
            created,
        )))),
        (Api::Messages, Api::Chat) => stages.push(Box::new(Sse::new(ChatToMessages::new(&plan.requested_model)))),
        (Api::Responses, Api::Messages) => stages.push(Box::new(Sse::new(MessagesToResponses::new(
            plan.responses.take().unwrap_or_default(),
            &plan.requested_model,
            created,
        )))),
        (Api::Responses, Api::Chat) => stages.push(Box::new(Sse::new(ChatToResponses::new(
            plan.responses.take().unwrap_or_default(),
            &plan.requested_model,
            created,
        )))),
        (Api::Chat, Api::Chat) => {
            if plan.provider == ProviderWire::GeminiChat {
                stages.push(Box::new(Sse::new(GeminiChatFix::default())));
            }
            if plan.strip_usage_chunk && status == 200 {
                stages.push(Box::new(UsageChunkStripper::default()));
            }
        }
        _ => {}
    }
    stages
}

/// Passes `bytes` through every stage; at the end each stage's tail still
/// passes through the stages after it.
fn run(stages: &mut [Box<dyn Transform>], input: &[u8], end: bool) -> Vec<u8> {
    let mut out: Option<Vec<u8>> = None;
    for stage in stages.iter_mut() {
        let mut next = stage.feed(out.as_deref().unwrap_or(input));
        if end {
            next.extend(stage.finish());
        }
        out = Some(next);
    }
    out.unwrap_or_else(|| input.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(client: Api, provider: ProviderWire) -> ResponsePlan {
        ResponsePlan {
            client,
            provider,
            requested_model: "m".into(),
            client_wants_usage: false,
            strip_usage_chunk: false,
            responses: None,
            keep_output_text: true,
        }
    }

    #[test]
    fn a_translated_stream_cut_short_is_an_error_and_a_whole_one_is_not() {
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
                     event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";
        let stop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        for (client, whole) in [(Api::Chat, false), (Api::Responses, false), (Api::Chat, true), (Api::Responses, true)]
        {
            let mut p =
                ResponsePipeline::start(plan(client, ProviderWire::Anthropic), 200, Some("text/event-stream"), None, 0);
            let body = if whole { format!("{start}{stop}") } else { start.to_string() };
            let fed = p.feed(body.as_bytes(), true);
            let out = String::from_utf8(fed.replace.unwrap()).unwrap();
            let extracted = p.finish();
            assert_eq!(extracted.error.is_some(), !whole, "{client:?} whole={whole}: {out}");
            assert_eq!(extracted.usage.map(|u| u.input_tokens), Some(3));
        }
    }

    #[test]
    fn a_chunk_the_stages_leave_as_it_is_is_not_replaced() {
        let plan = ResponsePlan { strip_usage_chunk: true, ..plan(Api::Chat, ProviderWire::OpenAiChat) };
        let mut p = ResponsePipeline::start(plan, 200, Some("text/event-stream"), None, 0);
        let plain = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        let fed = p.feed(plain.as_bytes(), false);
        assert!(fed.replace.is_none() && fed.first_token, "an unchanged chunk stays in Envoy's buffer");
        // Half an event is held back, so that chunk changes; so does one that carries `"usage":null`.
        let fed = p.feed(&plain.as_bytes()[..10], false);
        assert_eq!(fed.replace.as_deref(), Some(&b""[..]));
        let null = "oices\":[],\"usage\":null}\n\n";
        let fed = p.feed(null.as_bytes(), false);
        assert_eq!(fed.replace.as_deref(), Some(&b"data: {\"choices\":[]}\n\n"[..]));
        let usage =
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
        let fed = p.feed(usage.as_bytes(), true);
        assert_eq!(fed.replace.as_deref(), Some(&b"data: [DONE]\n\n"[..]));
        assert_eq!(p.finish().usage.map(|u| u.output_tokens), Some(1));
    }

    #[test]
    fn the_assistant_text_is_kept_only_for_an_event_that_carries_it() {
        let json = br#"{"model":"gpt-5","choices":[{"index":0,"message":{"content":"Hello"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let sse = "data: {\"model\":\"gpt-5\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n\
                   data: {\"model\":\"gpt-5\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
        for keep in [true, false] {
            let text = if keep { "Hello" } else { "" };
            let plan = || ResponsePlan { keep_output_text: keep, ..plan(Api::Chat, ProviderWire::OpenAiChat) };
            let mut p = ResponsePipeline::start(plan(), 200, Some("application/json"), None, 0);
            p.feed(json, true);
            let out = p.finish();
            assert_eq!((out.output_text.as_str(), out.usage.map(|u| u.output_tokens)), (text, Some(1)), "keep={keep}");

            let mut p = ResponsePipeline::start(plan(), 200, Some("text/event-stream"), None, 0);
            let fed = p.feed(sse.as_bytes(), true);
            assert!(fed.first_token, "keep={keep}: the first token is seen either way");
            let out = p.finish();
            assert_eq!((out.output_text.as_str(), out.usage.map(|u| u.output_tokens)), (text, Some(1)), "keep={keep}");
        }
    }
}

//! What the wire readers report into while a response passes.

use super::Usage;

/// Longest error message kept, in characters.
const MAX_ERROR_CHARS: usize = 512;

/// What the wire readers report into.
#[derive(Debug, Default)]
pub(super) struct Sink {
    pub(super) usage: Option<Usage>,
    pub(super) model: Option<String>,
    pub(super) error: Option<String>,
    pub(super) text: String,
    pub(super) max_text: usize,
    pub(super) first_token: bool,
}

impl Sink {
    /// Assistant text: also the first token when non-empty.
    pub(super) fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.first_token = true;
        let room = self.max_text.saturating_sub(self.text.len());
        self.text.push_str(prefix_within(text, room));
    }

    /// Generated content that is not assistant text (tool calls, reasoning).
    pub(super) fn token(&mut self) {
        self.first_token = true;
    }

    /// The first error wins: later ones usually restate it.
    pub(super) fn error(&mut self, message: &str) {
        if self.error.is_none() {
            self.error = Some(message.chars().take(MAX_ERROR_CHARS).collect());
        }
    }

    /// Every chunk of a stream repeats the model: kept once, not copied per chunk.
    pub(super) fn model(&mut self, model: &str) {
        if !model.is_empty() && self.model.as_deref() != Some(model) {
            self.model = Some(model.to_owned());
        }
    }
}

/// The longest prefix of `s` that fits in `max` bytes on a char boundary.
fn prefix_within(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_capped_on_a_char_boundary() {
        let mut sink = Sink { max_text: 4, ..Sink::default() };
        sink.text("ab");
        sink.text("é€");
        sink.text("z");
        assert_eq!(sink.text, "abé");
        assert!(sink.first_token);
    }

    #[test]
    fn errors_are_truncated_to_512_chars() {
        let mut sink = Sink::default();
        sink.error(&"é".repeat(600));
        assert_eq!(sink.error.as_ref().unwrap().chars().count(), 512);
        sink.error("second");
        assert!(sink.error.unwrap().starts_with('é'));
    }
}

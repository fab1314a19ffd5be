//! The small regular-expression subset catalog match rules use
//! (`^claude-opus-5-5-\d{8}$`, `^o[134]`, `^(?!.*-[tT][tT][sS](?:$|-))`),
//! with Python's `re.search` semantics, matched by backtracking over bytes.
//!
//! Supported: literals, `.`, `^`, `$`, classes `[a-z0-9_]` and `[^...]`,
//! `\d \D \w \W \s \S` and escaped punctuation, groups `( )` and `(?: )`,
//! lookahead `(?= )` and `(?! )`, alternation `|`, and the quantifiers
//! `* + ? {n} {n,} {n,m}`, greedy or lazy. Anything else is refused when the
//! catalog is read. Matching is bounded by a step budget, so a pathological
//! pattern against a client's model name fails to match instead of hanging.

use std::cell::Cell;

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Byte(u8),
    Any,
    Class(Box<[bool; 256]>),
    Start,
    End,
    Group(Vec<Vec<Node>>),
    Look { negative: bool, alt: Vec<Vec<Node>> },
    Repeat { node: Box<Node>, min: u32, max: u32, greedy: bool },
}

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct Regex {
    alt: Vec<Vec<Node>>,
}

const MAX_PATTERN: usize = 512;
const MAX_REPEAT: u32 = 1000;
const STEP_BUDGET: u32 = 100_000;

impl Regex {
    pub fn new(pattern: &str) -> Result<Regex, String> {
        if pattern.len() > MAX_PATTERN {
            return Err(format!("regex longer than {MAX_PATTERN} bytes"));
        }
        let mut p = Parser { s: pattern.as_bytes(), i: 0, depth: 0 };
        let alt = p.alt()?;
        if p.i != p.s.len() {
            return Err(format!("unsupported regex {pattern:?}: unbalanced ')'"));
        }
        Ok(Regex { alt })
    }

    /// Whether the pattern matches anywhere in `text` (`re.search`).
    pub fn is_match(&self, text: &str) -> bool {
        let m = Matcher { text: text.as_bytes(), steps: Cell::new(0) };
        (0..=text.len()).any(|start| m.alt(&self.alt, start, &mut |_| true))
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("unsupported regex {:?}: {what} at byte {}", String::from_utf8_lossy(self.s), self.i))
    }

    fn alt(&mut self) -> Result<Vec<Vec<Node>>, String> {
        self.depth += 1;
        if self.depth > 32 {
            return self.err("nesting too deep");
        }
        let mut alt = vec![self.seq()?];
        while self.peek() == Some(b'|') {
            self.i += 1;
            alt.push(self.seq()?);
        }
        self.depth -= 1;
        Ok(alt)
    }

    fn seq(&mut self) -> Result<Vec<Node>, String> {
        let mut seq = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'|' || c == b')' {
                break;
            }
            let atom = self.atom()?;
            seq.push(self.quantified(atom)?);
        }
        Ok(seq)
    }

    fn atom(&mut self) -> Result<Node, String> {
        let Some(c) = self.peek() else { return self.err("unexpected end") };
        self.i += 1;
        Ok(match c {
            b'.' => Node::Any,
            b'^' => Node::Start,
            b'$' => Node::End,
            b'(' => {
                let look = if self.s.get(self.i) == Some(&b'?') {
                    let kind = self.s.get(self.i + 1).copied();
                    self.i += 2;
                    match kind {
                        Some(b':') => None,
                        Some(b'=') => Some(false),
                        Some(b'!') => Some(true),
                        _ => return self.err("unsupported group"),
                    }
                } else {
                    None
                };
                let alt = self.alt()?;
                if self.peek() != Some(b')') {
                    return self.err("missing ')'");
                }
                self.i += 1;
                match look {
                    Some(negative) => Node::Look { negative, alt },
                    None => Node::Group(alt),
                }
            }
            b'[' => self.class()?,
            b'\\' => self.escape()?,
            b'*' | b'+' | b'?' | b'{' => return self.err("nothing to repeat"),
            c => Node::Byte(c),
        })
    }

    fn escape(&mut self) -> Result<Node, String> {
        let Some(c) = self.peek() else { return self.err("trailing '\\'") };
        self.i += 1;
        let set = |f: fn(u8) -> bool, negate: bool| {
            let mut t = Box::new([false; 256]);
            for (b, slot) in t.iter_mut().enumerate() {
                *slot = f(b as u8) != negate;
            }
            Node::Class(t)
        };
        Ok(match c {
            b'd' => set(|b| b.is_ascii_digit(), false),
            b'D' => set(|b| b.is_ascii_digit(), true),
            b'w' => set(is_word, false),
            b'W' => set(is_word, true),
            b's' => set(|b| b.is_ascii_whitespace(), false),
            b'S' => set(|b| b.is_ascii_whitespace(), true),
            c if c.is_ascii_punctuation() || c == b' ' => Node::Byte(c),
            _ => return self.err("unsupported escape"),
        })
    }

    fn class(&mut self) -> Result<Node, String> {
        let mut t = Box::new([false; 256]);
        let negate = self.peek() == Some(b'^');
        if negate {
            self.i += 1;
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else { return self.err("missing ']'") };
            self.i += 1;
            if c == b']' && !first {
                break;
            }
            first = false;
            let lo = match c {
                b'\\' => match self.escape()? {
                    Node::Byte(b) => b,
                    Node::Class(set) => {
                        for (slot, on) in t.iter_mut().zip(set.iter()) {
                            *slot |= *on;
                        }
                        continue;
                    }
                    _ => return self.err("unsupported class escape"),
                },
                c => c,
            };
            let range = self.peek() == Some(b'-') && self.s.get(self.i + 1).is_some_and(|&n| n != b']');
            let hi = if range {
                let hi = self.s.get(self.i + 1).copied().unwrap_or(lo);
                self.i += 2;
                if hi < lo {
                    return self.err("bad range");
                }
                hi
            } else {
                lo
            };
            for b in lo..=hi {
                if let Some(slot) = t.get_mut(usize::from(b)) {
                    *slot = true;
                }
            }
        }
        if negate {
            for slot in t.iter_mut() {
                *slot = !*slot;
            }
        }
        Ok(Node::Class(t))
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(self.s.get(start..self.i)?).ok()?.parse().ok()
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        let (min, max) = match self.peek() {
            Some(b'*') => (0, MAX_REPEAT),
            Some(b'+') => (1, MAX_REPEAT),
            Some(b'?') => (0, 1),
            Some(b'{') => {
                self.i += 1;
                let Some(min) = self.number() else { return self.err("bad {n}") };
                let max = if self.peek() == Some(b',') {
                    self.i += 1;
                    if self.peek() == Some(b'}') {
                        MAX_REPEAT
                    } else {
                        let Some(max) = self.number() else { return self.err("bad {n,m}") };
                        max
                    }
                } else {
                    min
                };
                if self.peek() != Some(b'}') || min > max || max > MAX_REPEAT {
                    return self.err("bad repeat");
                }
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.i += 1;
        if matches!(atom, Node::Start | Node::End | Node::Look { .. }) {
            return self.err("cannot repeat an assertion");
        }
        let greedy = if self.peek() == Some(b'?') {
            self.i += 1;
            false
        } else {
            true
        };
        Ok(Node::Repeat { node: Box::new(atom), min, max, greedy })
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

struct Matcher<'t> {
    text: &'t [u8],
    steps: Cell<u32>,
}

type Next<'k> = &'k mut dyn FnMut(usize) -> bool;

impl Matcher<'_> {
    fn alt(&self, alt: &[Vec<Node>], pos: usize, k: Next<'_>) -> bool {
        alt.iter().any(|seq| self.seq(seq, pos, k))
    }

    fn seq(&self, seq: &[Node], pos: usize, k: Next<'_>) -> bool {
        let steps = self.steps.get().saturating_add(1);
        self.steps.set(steps);
        if steps > STEP_BUDGET {
            return false;
        }
        let Some((node, rest)) = seq.split_first() else {
            return k(pos);
        };
        let byte = self.text.get(pos).copied();
        match node {
            Node::Byte(b) => byte == Some(*b) && self.seq(rest, pos + 1, k),
            Node::Any => byte.is_some_and(|b| b != b'\n') && self.seq(rest, pos + 1, k),
            Node::Class(set) => {
                byte.is_some_and(|b| set.get(usize::from(b)).copied().unwrap_or(false)) && self.seq(rest, pos + 1, k)
            }
            Node::Start => pos == 0 && self.seq(rest, pos, k),
            Node::End => pos == self.text.len() && self.seq(rest, pos, k),
            Node::Group(alt) => self.alt(alt, pos, &mut |p| self.seq(rest, p, k)),
            Node::Look { negative, alt } => {
                let found = self.alt(alt, pos, &mut |_| true);
                found != *negative && self.seq(rest, pos, k)
            }
            Node::Repeat { node, min, max, greedy } => self.repeat(node, *min, *max, *greedy, 0, pos, rest, k),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn repeat(
        &self,
        node: &Node,
        min: u32,
        max: u32,
        greedy: bool,
        count: u32,
        pos: usize,
        rest: &[Node],
        k: Next<'_>,
    ) -> bool {
        let one = std::slice::from_ref(node);
        if count < min {
            return self.seq(one, pos, &mut |p| self.repeat(node, min, max, greedy, count + 1, p, rest, k));
        }
        // An iteration that consumes nothing cannot help: stop there, as Python does.
        let more = |k: Next<'_>| {
            count < max
                && self.seq(one, pos, &mut |p| p != pos && self.repeat(node, min, max, greedy, count + 1, p, rest, k))
        };
        // Greedy: one more iteration first; lazy: the rest first.
        if greedy && more(k) {
            return true;
        }
        self.seq(rest, pos, k) || (!greedy && more(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Regex::new(pattern).unwrap().is_match(text)
    }

    #[test]
    fn catalog_patterns_match_as_python_does() {
        assert!(m(r"^claude-opus-5-5-\d{8}$", "claude-opus-5-5-20260101"));
        assert!(!m(r"^claude-opus-5-5-\d{8}$", "claude-opus-5-5-2026010"));
        assert!(!m(r"^claude-opus-5-5-\d{8}$", "claude-opus-5-5-20260101-v1"));
        assert!(m(r"^claude-opus-5[-@]\d{8}$", "claude-opus-5@20260723"));
        assert!(m(r"^gpt-5\.6-luna-\d{4}-\d{2}-\d{2}$", "gpt-5.6-luna-2026-08-01"));
        assert!(!m(r"^gpt-5\.6-luna-\d{4}-\d{2}-\d{2}$", "gpt-5x6-luna-2026-08-01"));
        assert!(m(r"^o[134]", "o3-mini"));
        assert!(!m(r"^o[134]", "o2"));
        assert!(m(r"^gemini-3\.5-flash-\d", "gemini-3.5-flash-001"));
        // Negative lookahead: not a TTS model.
        let not_tts = r"^(?!.*-[tT][tT][sS](?:$|-))";
        assert!(m(not_tts, "gemini-2.5-pro"));
        assert!(m(not_tts, "gemini-2.5-pro-ttsx"));
        assert!(!m(not_tts, "gemini-2.5-pro-tts"));
        assert!(!m(not_tts, "gemini-2.5-pro-preview-tts-001"));
        // search, not match: unanchored patterns match anywhere.
        assert!(m("opus", "claude-opus-5"));
        assert!(m("a|b", "xxb"));
        assert!(m("^(ab)+c$", "ababc"));
        assert!(m("^a.*?c$", "abbbc"));
        assert!(m("^[a-c]{2,3}$", "abc") && !m("^[a-c]{2,3}$", "abcd"));
        assert!(m(r"^[^\d]+$", "abc") && !m(r"^[^\d]+$", "a1"));
        assert!(m("^x(?=y)", "xy") && !m("^x(?=y)", "xz"));
        assert!(m("^(a*)*$", "aaaa"));
    }

    #[test]
    fn unsupported_syntax_is_refused() {
        for bad in ["(", "a)", "[a", "*a", r"\p{L}", "(?<n>a)", "a{2,1}", "a{5000}", r"\1", "^*"] {
            assert!(Regex::new(bad).is_err(), "{bad}");
        }
        assert!(Regex::new(&"a".repeat(600)).is_err());
    }

    #[test]
    fn pathological_patterns_stop_at_the_step_budget() {
        let r = Regex::new("^(a|a)*(a|a)*(a|a)*b$").unwrap();
        let t = std::time::Instant::now();
        assert!(!r.is_match(&"a".repeat(200)));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}

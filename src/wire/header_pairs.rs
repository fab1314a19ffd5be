//! The proxy-wasm ABI's header map, as Envoy hands it to the filter and takes
//! it back (`filter::abi`): kept apart so it is tested natively.

/// A header map read once: its names and values in one text, with where
/// each starts and ends (two allocations instead of two per header).
#[derive(Debug, Default, Clone)]
pub struct Headers {
    text: String,
    /// Each header's name and value as byte ranges of `text`.
    spans: Vec<[u32; 4]>,
}

impl Headers {
    /// Names and values in order (a name may repeat).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let at = |from: u32, to: u32| self.text.get(from as usize..to as usize).unwrap_or_default();
        self.spans.iter().map(move |&[n0, n1, v0, v1]| (at(n0, n1), at(v0, v1)))
    }

    /// The first value of `name` (lowercase, as Envoy hands names over).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    fn push(&mut self, name: &str, value: &str) {
        let n0 = self.text.len() as u32;
        self.text.push_str(name);
        let n1 = self.text.len() as u32;
        self.text.push_str(value);
        self.spans.push([n0, n1, n1, self.text.len() as u32]);
    }
}

/// The same headers in the same order, however the text is laid out.
impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let mut headers = Headers::default();
        for (name, value) in pairs {
            headers.push(name.as_ref(), value.as_ref());
        }
        headers
    }
}

/// The ABI's header map: a u32 count, then a u32 name size and a u32 value
/// size per header, then each name and each value followed by a NUL; all
/// little-endian. HTTP lets a value carry bytes that are not UTF-8 (obs-text,
/// e.g. Latin-1), and Envoy passes them on, so both are read with U+FFFD in
/// place of invalid bytes. `None` when the bytes do not hold what they say.
pub fn decode_pairs(bytes: &[u8]) -> Option<Headers> {
    if bytes.is_empty() {
        return Some(Headers::default());
    }
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let count = u32_at(0)?;
    let first = count.checked_mul(8)?.checked_add(4)?;
    // Each header takes at least its 8 size bytes and 2 NULs: a count the bytes cannot hold is malformed.
    if count.checked_mul(10)? > bytes.len() || u32::try_from(bytes.len()).is_err() {
        return None;
    }
    let mut spans = Vec::with_capacity(count);
    let mut at = first;
    let mut next = |size: usize| -> Option<[u32; 2]> {
        let end = at.checked_add(size)?;
        bytes.get(at..end)?;
        let span = [(at - first) as u32, (end - first) as u32];
        at = end + 1;
        Some(span)
    };
    for i in 0..count {
        let (name_size, value_size) = (u32_at(4 + i * 8)?, u32_at(8 + i * 8)?);
        let ([n0, n1], [v0, v1]) = (next(name_size)?, next(value_size)?);
        spans.push([n0, n1, v0, v1]);
    }
    let region = bytes.get(first..at.min(bytes.len()))?;
    // Valid UTF-8 (the usual case) is one check and one copy; otherwise each part is decoded alone.
    // A part must also start and end on a character: the byte after it should be a NUL, but is not checked.
    match std::str::from_utf8(region) {
        Ok(text) if spans.iter().flatten().all(|&at| text.is_char_boundary(at as usize)) => {
            Some(Headers { text: text.to_owned(), spans })
        }
        _ => {
            let part = |from: u32, to: u32| lossy(region.get(from as usize..to as usize).unwrap_or_default());
            Some(spans.iter().map(|&[n0, n1, v0, v1]| (part(n0, n1), part(v0, v1))).collect())
        }
    }
}

/// The ABI's header map from pairs (see [`decode_pairs`]).
pub fn encode_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + pairs.iter().map(|(n, v)| 10 + n.len() + v.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (name, value) in pairs {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        for part in [name, value] {
            out.extend_from_slice(part.as_bytes());
            out.push(0);
        }
    }
    out
}

/// Text from bytes, with U+FFFD in place of bytes that are not UTF-8.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// As [`lossy`], keeping the bytes' allocation when they are valid UTF-8.
pub fn lossy_owned(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| lossy(e.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_pairs_round_trip() {
        let pairs = [(":method", "POST"), ("x-empty", ""), ("content-type", "application/json")];
        let decoded = decode_pairs(&encode_pairs(&pairs)).unwrap();
        assert_eq!(decoded.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(decoded, pairs.into_iter().collect());
        assert_eq!(decoded.get("content-type"), Some("application/json"));
        assert_eq!(decoded.get("x-empty"), Some(""));
        assert_eq!(decoded.get("accept"), None);
        assert_eq!(decode_pairs(&encode_pairs(&[])).unwrap(), Headers::default());
        assert_eq!(decode_pairs(&[]).unwrap(), Headers::default());
    }

    #[test]
    fn header_values_that_are_not_utf8_read_with_replacement_characters() {
        let mut bytes = encode_pairs(&[("x-note", "caf?"), ("accept", "json")]);
        let at = bytes.iter().rposition(|b| *b == b'?').unwrap();
        bytes[at] = 0xe9;
        let decoded = decode_pairs(&bytes).unwrap();
        assert_eq!(decoded.iter().collect::<Vec<_>>(), [("x-note", "caf\u{fffd}"), ("accept", "json")]);
    }

    #[test]
    fn a_part_that_ends_inside_a_character_reads_with_a_replacement_character() {
        // A name of one byte, 0xC3, whose NUL is 0xA9: the text is valid UTF-8, the name's end is not a boundary.
        let mut bytes = encode_pairs(&[("x", "v")]);
        let at = bytes.iter().position(|b| *b == b'x').unwrap();
        bytes[at] = 0xc3;
        bytes[at + 1] = 0xa9;
        let decoded = decode_pairs(&bytes).unwrap();
        assert_eq!(decoded.iter().collect::<Vec<_>>(), [("\u{fffd}", "v")]);
    }

    #[test]
    fn owned_bytes_become_text_with_replacement_characters() {
        assert_eq!(lossy_owned(b"gpt-4o".to_vec()), "gpt-4o");
        assert_eq!(lossy_owned(b"caf\xe9".to_vec()), "caf\u{fffd}");
    }

    #[test]
    fn malformed_maps_are_refused_not_read_past() {
        let good = encode_pairs(&[("a", "b"), ("cc", "dd")]);
        for cut in 1..good.len() - 1 {
            assert_eq!(decode_pairs(&good[..cut]), None, "cut at {cut}");
        }
        // A count no buffer of this size can hold, and sizes past the end.
        assert_eq!(decode_pairs(&u32::MAX.to_le_bytes()), None);
        let mut huge = encode_pairs(&[("a", "b")]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_pairs(&huge), None);
    }
}

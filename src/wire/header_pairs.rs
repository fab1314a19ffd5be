//! The proxy-wasm ABI's header map, as Envoy hands it to the filter and takes
//! it back (`filter::abi`): kept apart so it is tested natively.

/// The ABI's header map: a u32 count, then a u32 name size and a u32 value
/// size per header, then each name and each value followed by a NUL; all
/// little-endian. HTTP lets a value carry bytes that are not UTF-8 (obs-text,
/// e.g. Latin-1), and Envoy passes them on, so both are read with U+FFFD in
/// place of invalid bytes. `None` when the bytes do not hold what they say.
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let count = u32_at(0)?;
    let mut text = count.checked_mul(8)?.checked_add(4)?;
    // Each header takes at least its 8 size bytes and 2 NULs: a count the bytes cannot hold is malformed.
    if count.checked_mul(10)? > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    let mut next = |size: usize| -> Option<String> {
        let s = bytes.get(text..text.checked_add(size)?)?;
        text += size + 1;
        Some(lossy(s))
    };
    for i in 0..count {
        let (name_size, value_size) = (u32_at(4 + i * 8)?, u32_at(8 + i * 8)?);
        pairs.push((next(name_size)?, next(value_size)?));
    }
    Some(pairs)
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
        let expected: Vec<(String, String)> = pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(decoded, expected);
        assert_eq!(decode_pairs(&encode_pairs(&[])).unwrap(), vec![]);
        assert_eq!(decode_pairs(&[]).unwrap(), vec![]);
    }

    #[test]
    fn header_values_that_are_not_utf8_read_with_replacement_characters() {
        let mut bytes = encode_pairs(&[("x-note", "caf?")]);
        let at = bytes.iter().rposition(|b| *b == b'?').unwrap();
        bytes[at] = 0xe9;
        assert_eq!(decode_pairs(&bytes).unwrap(), vec![("x-note".to_string(), "caf\u{fffd}".to_string())]);
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

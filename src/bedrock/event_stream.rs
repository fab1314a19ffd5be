//! Incremental decoder for AWS event-stream framing
//! (`application/vnd.amazon.eventstream`), which Bedrock's
//! InvokeModelWithResponseStream answers in.
//!
//! ```text
//! message = total_length:u32 headers_length:u32 prelude_crc:u32 headers payload message_crc:u32
//! header  = name_length:u8 name value_type:u8 value
//! ```
//!
//! Integers are big-endian; both CRCs are CRC-32 (IEEE), the prelude CRC over
//! the first 8 bytes and the message CRC over everything before it. Header
//! value types: 0 true, 1 false, 2 byte, 3 short, 4 integer, 5 long, 6 byte
//! array (u16 length), 7 string (u16 length), 8 timestamp (i64 ms), 9 UUID (16
//! bytes). Only the message being received is buffered, and a message over
//! [`MAX_MESSAGE_BYTES`] is refused before it is buffered.

use std::fmt;

use super::crc32::crc32;

/// Largest message accepted. AWS event-stream messages are at most 16 MiB of
/// payload plus headers; anything longer is corrupt framing.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024 + 128 * 1024;

const PRELUDE_LEN: usize = 12;
const MIN_MESSAGE_LEN: usize = PRELUDE_LEN + 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Vec<u8>),
    String(String),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: HeaderValue,
}

/// One decoded event-stream message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<Header>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The value of a string header, e.g. `:event-type`.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.name == name).and_then(|h| match &h.value {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The prelude is corrupt, so message boundaries are lost: decoding stops.
    PreludeCrc { expected: u32, actual: u32 },
    /// Lengths that cannot be right (too short, headers longer than the
    /// message, over [`MAX_MESSAGE_BYTES`]): decoding stops.
    BadLength { total: u32, headers: u32 },
    /// One message is corrupt; decoding goes on with the next.
    MessageCrc { expected: u32, actual: u32 },
    /// A header could not be read; decoding goes on with the next message.
    BadHeader(String),
    /// The stream ended inside a message.
    Truncated { buffered: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::PreludeCrc { expected, actual } => {
                write!(f, "event-stream prelude CRC mismatch (frame says {expected:#010x}, computed {actual:#010x})")
            }
            DecodeError::BadLength { total, headers } => {
                write!(f, "event-stream message has impossible lengths (total {total}, headers {headers})")
            }
            DecodeError::MessageCrc { expected, actual } => {
                write!(f, "event-stream message CRC mismatch (frame says {expected:#010x}, computed {actual:#010x})")
            }
            DecodeError::BadHeader(what) => write!(f, "event-stream header: {what}"),
            DecodeError::Truncated { buffered } => {
                write!(f, "event stream ended inside a message ({buffered} bytes buffered)")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    /// Bytes of the message being received (and possibly later ones).
    buf: Vec<u8>,
    /// Framing was lost; further input is ignored.
    failed: bool,
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

impl EventStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes the messages `chunk` completes. After a framing error (prelude
    /// CRC, impossible lengths) the error is returned once and later input is
    /// ignored, since message boundaries can no longer be found.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Result<Message, DecodeError>> {
        let mut out = Vec::new();
        if self.failed {
            return out;
        }
        self.buf.extend_from_slice(chunk);
        let mut pos = 0;
        while let Some(rest) = self.buf.get(pos..) {
            let (Some(total), Some(headers_len), Some(prelude_crc)) =
                (be_u32(rest, 0), be_u32(rest, 4), be_u32(rest, 8))
            else {
                break;
            };
            let actual = crc32(rest.get(..8).unwrap_or_default());
            if actual != prelude_crc {
                out.push(Err(DecodeError::PreludeCrc { expected: prelude_crc, actual }));
                self.fail();
                return out;
            }
            let (total_len, headers_len_usize) = (total as usize, headers_len as usize);
            if !(MIN_MESSAGE_LEN..=MAX_MESSAGE_BYTES).contains(&total_len)
                || headers_len_usize > total_len - MIN_MESSAGE_LEN
            {
                out.push(Err(DecodeError::BadLength { total, headers: headers_len }));
                self.fail();
                return out;
            }
            let Some(frame) = rest.get(..total_len) else {
                break;
            };
            pos += total_len;
            out.push(decode_frame(frame, headers_len_usize));
        }
        self.buf.drain(..pos);
        out
    }

    /// Ends the stream: an error if it stopped inside a message.
    pub fn finish(&mut self) -> Option<DecodeError> {
        let buffered = self.buf.len();
        self.buf.clear();
        (buffered > 0 && !self.failed).then_some(DecodeError::Truncated { buffered })
    }

    /// Bytes held for an incomplete message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn fail(&mut self) {
        self.failed = true;
        self.buf = Vec::new();
    }
}

/// Decodes one whole frame whose prelude is already checked.
fn decode_frame(frame: &[u8], headers_len: usize) -> Result<Message, DecodeError> {
    let crc_at = frame.len() - 4;
    let expected = be_u32(frame, crc_at).unwrap_or_default();
    let actual = crc32(frame.get(..crc_at).unwrap_or_default());
    if expected != actual {
        return Err(DecodeError::MessageCrc { expected, actual });
    }
    let headers_end = PRELUDE_LEN + headers_len;
    let headers = parse_headers(frame.get(PRELUDE_LEN..headers_end).unwrap_or_default())?;
    let payload = frame.get(headers_end..crc_at).unwrap_or_default().to_vec();
    Ok(Message { headers, payload })
}

/// A cursor over header bytes; every read checks its bounds.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError::BadHeader(format!("needs {n} bytes, {} left", self.bytes.len())));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| DecodeError::BadHeader("short read".to_owned()))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
}

fn parse_headers(bytes: &[u8]) -> Result<Vec<Header>, DecodeError> {
    let mut r = Reader { bytes };
    let mut headers = Vec::new();
    while !r.bytes.is_empty() {
        let name_len = usize::from(r.u8()?);
        let name = String::from_utf8_lossy(r.take(name_len)?).into_owned();
        let value = match r.u8()? {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(r.array()?)),
            3 => HeaderValue::Short(i16::from_be_bytes(r.array()?)),
            4 => HeaderValue::Int(i32::from_be_bytes(r.array()?)),
            5 => HeaderValue::Long(i64::from_be_bytes(r.array()?)),
            6 => {
                let len = usize::from(r.u16()?);
                HeaderValue::Bytes(r.take(len)?.to_vec())
            }
            7 => {
                let len = usize::from(r.u16()?);
                let s = std::str::from_utf8(r.take(len)?)
                    .map_err(|_| DecodeError::BadHeader(format!("header '{name}' is not UTF-8")))?;
                HeaderValue::String(s.to_owned())
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(r.array()?)),
            9 => HeaderValue::Uuid(r.array()?),
            other => return Err(DecodeError::BadHeader(format!("header '{name}' has unknown type {other}"))),
        };
        headers.push(Header { name, value });
    }
    Ok(headers)
}

/// Encodes a message (for tests here and in sibling modules).
#[cfg(test)]
pub(super) fn encode(headers: &[Header], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for header in headers {
        h.push(header.name.len() as u8);
        h.extend_from_slice(header.name.as_bytes());
        match &header.value {
            HeaderValue::Bool(true) => h.push(0),
            HeaderValue::Bool(false) => h.push(1),
            HeaderValue::Byte(v) => {
                h.push(2);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Short(v) => {
                h.push(3);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int(v) => {
                h.push(4);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Long(v) => {
                h.push(5);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Bytes(v) => {
                h.push(6);
                h.extend_from_slice(&(v.len() as u16).to_be_bytes());
                h.extend_from_slice(v);
            }
            HeaderValue::String(v) => {
                h.push(7);
                h.extend_from_slice(&(v.len() as u16).to_be_bytes());
                h.extend_from_slice(v.as_bytes());
            }
            HeaderValue::Timestamp(v) => {
                h.push(8);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Uuid(v) => {
                h.push(9);
                h.extend_from_slice(v);
            }
        }
    }
    let total = (MIN_MESSAGE_LEN + h.len() + payload.len()) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
pub(super) fn string_header(name: &str, value: &str) -> Header {
    Header { name: name.to_owned(), value: HeaderValue::String(value.to_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors from awslabs/aws-c-event-stream, tests/message_deserializer_test.c.
    const NO_OP: [u8; 16] =
        [0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff];
    const NO_HEADERS: [u8; 29] = [
        0x00, 0x00, 0x00, 0x1D, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x52, 0x8c, 0x5a, 0x7b, 0x27, 0x66, 0x6f, 0x6f, 0x27,
        0x3a, 0x27, 0x62, 0x61, 0x72, 0x27, 0x7d, 0xc3, 0x65, 0x39, 0x36,
    ];

    fn one_header_vector() -> Vec<u8> {
        let mut v = vec![0x00, 0x00, 0x00, 0x3D, 0x00, 0x00, 0x00, 0x20, 0x07, 0xFD, 0x83, 0x96, 0x0C];
        v.extend_from_slice(b"content-type");
        v.extend_from_slice(&[0x07, 0x00, 0x10]);
        v.extend_from_slice(b"application/json");
        v.extend_from_slice(b"{'foo':'bar'}");
        v.extend_from_slice(&[0x8D, 0x9C, 0x08, 0xB1]);
        v
    }

    fn decode_all(input: &[u8]) -> Vec<Result<Message, DecodeError>> {
        let mut d = EventStreamDecoder::new();
        let mut out = d.feed(input);
        out.extend(d.finish().map(Err));
        out
    }

    /// Every split point and one byte at a time give the same result.
    fn assert_split_invariant(input: &[u8]) -> Vec<Result<Message, DecodeError>> {
        let whole = decode_all(input);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            let mut d = EventStreamDecoder::new();
            let mut out = d.feed(a);
            out.extend(d.feed(b));
            out.extend(d.finish().map(Err));
            assert_eq!(out, whole, "split at {cut}");
        }
        let mut d = EventStreamDecoder::new();
        let mut out = Vec::new();
        for byte in input {
            out.extend(d.feed(std::slice::from_ref(byte)));
        }
        out.extend(d.finish().map(Err));
        assert_eq!(out, whole, "one byte at a time");
        whole
    }

    #[test]
    fn aws_test_vectors() {
        let mut stream = NO_OP.to_vec();
        stream.extend_from_slice(&NO_HEADERS);
        stream.extend(one_header_vector());
        let messages = assert_split_invariant(&stream);
        assert_eq!(
            messages,
            vec![
                Ok(Message { headers: vec![], payload: vec![] }),
                Ok(Message { headers: vec![], payload: b"{'foo':'bar'}".to_vec() }),
                Ok(Message {
                    headers: vec![string_header("content-type", "application/json")],
                    payload: b"{'foo':'bar'}".to_vec()
                }),
            ]
        );
    }

    #[test]
    fn encoder_reproduces_the_aws_vectors() {
        assert_eq!(encode(&[], &[]), NO_OP);
        assert_eq!(encode(&[], b"{'foo':'bar'}"), NO_HEADERS);
        assert_eq!(encode(&[string_header("content-type", "application/json")], b"{'foo':'bar'}"), one_header_vector());
    }

    #[test]
    fn every_header_type() {
        let headers = vec![
            Header { name: "t".into(), value: HeaderValue::Bool(true) },
            Header { name: "f".into(), value: HeaderValue::Bool(false) },
            Header { name: "byte".into(), value: HeaderValue::Byte(-3) },
            Header { name: "short".into(), value: HeaderValue::Short(-300) },
            Header { name: "int".into(), value: HeaderValue::Int(70000) },
            Header { name: "long".into(), value: HeaderValue::Long(-5_000_000_000) },
            Header { name: "bytes".into(), value: HeaderValue::Bytes(vec![0, 1, 2, 255]) },
            string_header(":event-type", "chunk"),
            Header { name: "ts".into(), value: HeaderValue::Timestamp(1_700_000_000_123) },
            Header { name: "id".into(), value: HeaderValue::Uuid([7; 16]) },
        ];
        let frame = encode(&headers, b"payload");
        let messages = assert_split_invariant(&frame);
        assert_eq!(messages, vec![Ok(Message { headers: headers.clone(), payload: b"payload".to_vec() })]);
        let Ok(m) = &messages[0] else { panic!() };
        assert_eq!(m.header_str(":event-type"), Some("chunk"));
        assert_eq!(m.header_str("int"), None);
    }

    #[test]
    fn message_crc_error_skips_only_that_message() {
        let mut bad = encode(&[], b"corrupt me");
        bad[14] ^= 0xFF;
        let mut stream = bad;
        stream.extend(encode(&[], b"fine"));
        let out = assert_split_invariant(&stream);
        assert!(matches!(out[0], Err(DecodeError::MessageCrc { .. })));
        assert_eq!(out[1], Ok(Message { headers: vec![], payload: b"fine".to_vec() }));
    }

    #[test]
    fn prelude_crc_error_stops_decoding() {
        let mut stream = encode(&[], b"one");
        stream[9] ^= 1;
        stream.extend(encode(&[], b"two"));
        let out = assert_split_invariant(&stream);
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0], Err(DecodeError::PreludeCrc { .. })));
    }

    #[test]
    fn impossible_lengths_stop_decoding() {
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&(u32::MAX).to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        let mut d = EventStreamDecoder::new();
        let out = d.feed(&prelude);
        assert!(matches!(out[..], [Err(DecodeError::BadLength { .. })]));
        assert_eq!(d.buffered(), 0);
        assert!(d.feed(&encode(&[], b"x")).is_empty());
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn headers_longer_than_their_section_are_an_error() {
        // A string header whose declared length runs past the headers section.
        let mut h = vec![1, b'a', 7, 0, 50];
        h.extend_from_slice(b"short");
        let total = (MIN_MESSAGE_LEN + h.len()) as u32;
        let mut frame = Vec::new();
        frame.extend_from_slice(&total.to_be_bytes());
        frame.extend_from_slice(&(h.len() as u32).to_be_bytes());
        let crc = crc32(&frame);
        frame.extend_from_slice(&crc.to_be_bytes());
        frame.extend_from_slice(&h);
        let crc = crc32(&frame);
        frame.extend_from_slice(&crc.to_be_bytes());
        let out = assert_split_invariant(&frame);
        assert!(matches!(out[..], [Err(DecodeError::BadHeader(_))]));
    }

    #[test]
    fn truncated_stream_is_reported() {
        let frame = encode(&[], b"payload");
        let mut d = EventStreamDecoder::new();
        assert!(d.feed(&frame[..10]).is_empty());
        assert_eq!(d.finish(), Some(DecodeError::Truncated { buffered: 10 }));
    }

    #[test]
    fn buffer_holds_only_the_current_message() {
        let frame = encode(&[string_header(":event-type", "chunk")], &[b'x'; 1000]);
        let mut d = EventStreamDecoder::new();
        for _ in 0..100 {
            for piece in frame.chunks(7) {
                for m in d.feed(piece) {
                    assert!(m.is_ok());
                }
                assert!(d.buffered() < frame.len());
            }
        }
        assert_eq!(d.buffered(), 0);
    }
}

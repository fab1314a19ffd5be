//! CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, the gzip CRC) that
//! AWS event-stream frames carry, table-driven. The table is built at compile time.

const TABLE: [u32; 256] = table();

#[allow(clippy::indexing_slicing)] // const evaluation: an index out of range fails the build, never at run time
const fn table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
}

/// CRC-32 of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    Crc32::new().update(bytes).value()
}

/// An incremental CRC-32, for data that arrives in pieces.
#[derive(Clone, Copy, Debug)]
pub(super) struct Crc32(u32);

impl Crc32 {
    pub(super) fn new() -> Self {
        Crc32(0xFFFF_FFFF)
    }

    pub(super) fn update(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            // The index is a u8, so always inside the 256-entry table.
            let entry = TABLE.get(usize::from(self.0 as u8 ^ b)).copied().unwrap_or(0);
            self.0 = entry ^ (self.0 >> 8);
        }
        self
    }

    pub(super) fn value(self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // The standard check value for CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"The quick brown fox jumps over the lazy dog"), 0x414F_A339);
    }

    #[test]
    fn incremental_matches_whole() {
        let data = b"split anywhere gives the same checksum";
        for cut in 0..=data.len() {
            let (a, b) = data.split_at(cut);
            assert_eq!(Crc32::new().update(a).update(b).value(), crc32(data));
        }
    }
}

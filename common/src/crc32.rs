//! CRC32 (IEEE 802.3, the value of zlib's `crc32`) for key checksums, from one 1 KiB table built
//! at compile time.
//!
//! Keys are under 60 bytes, so a byte-at-a-time CRC costs well under a microsecond; the
//! `crc32fast` crate's slice-by-16 tables (16 KiB that barely compress) were the largest single
//! item in the edge's WASM data.

/// The reflected IEEE polynomial.
const POLY: u32 = 0xEDB8_8320;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        // `i` < 256: the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// The CRC32 of `bytes`.
#[must_use]
pub fn hash(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| {
        TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values_match_zlib() {
        assert_eq!(hash(b""), 0);
        assert_eq!(hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            hash(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    proptest! {
        #[test]
        fn it_agrees_with_crc32fast(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(hash(&bytes), crc32fast::hash(&bytes));
        }
    }
}

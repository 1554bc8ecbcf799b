//! Base62 with the alphabet `0-9A-Za-z`, most significant digit first (the GitHub token scheme).
//!
//! The alphabet is in ASCII order, so fixed-width encodings sort like the numbers they encode.

/// The 62 digits, in ASCII (and therefore sort) order.
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whether `c` is one of the 62 digits.
#[must_use]
pub fn is_digit(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// Encodes `value` in exactly `width` digits, left-padded with `0`.
///
/// # Panics
/// Never for the widths this crate uses; a `value` too large for `width` digits keeps only the
/// low-order digits, which callers rule out by choosing `width` (6 for a `u32`, 22 for a `u128`).
#[must_use]
pub fn encode_fixed(mut value: u128, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    // Every byte comes from ALPHABET, which is ASCII.
    digits.into_iter().map(char::from).collect()
}

/// Decodes a base62 string, or `None` for a non-digit or an overflow.
#[must_use]
pub fn decode(s: &str) -> Option<u128> {
    s.bytes().try_fold(0u128, |acc, c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        acc.checked_mul(62)?.checked_add(u128::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_all_zero_digits() {
        assert_eq!(encode_fixed(0, 6), "000000");
    }

    #[test]
    fn known_values_encode_most_significant_first() {
        assert_eq!(encode_fixed(61, 2), "0z");
        assert_eq!(encode_fixed(62, 2), "10");
        assert_eq!(encode_fixed(u128::from(u32::MAX), 6), "4gfFC3");
    }

    #[test]
    fn decode_inverts_encode() {
        for v in [
            0u128,
            1,
            61,
            62,
            12_345_678,
            u128::from(u32::MAX),
            u128::MAX,
        ] {
            assert_eq!(decode(&encode_fixed(v, 22)), Some(v));
        }
    }

    #[test]
    fn fixed_width_encodings_sort_like_their_numbers() {
        let a = encode_fixed(1_000, 22);
        let b = encode_fixed(1_001, 22);
        let c = encode_fixed(u128::from(u64::MAX), 22);
        assert!(a < b && b < c);
    }
}

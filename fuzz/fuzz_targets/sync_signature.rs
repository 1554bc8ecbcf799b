//! The signature on sync and usage batches (`X-Keyward-Timestamp`, `X-Keyward-Signature`):
//! what the edge and the usage function check before they read a body.
//!
//! Properties: a body signed with the secret verifies exactly when its timestamp is within
//! `MAX_SKEW_S` of the receiver's clock (computed without overflow); with any body byte flipped,
//! any signature digit changed, or another secret, it never verifies; headers the fuzzer makes up
//! never verify unless they are the signature `sign` gives; nothing panics.
#![no_main]

use arbitrary::Arbitrary;
use keyward_common::sync::{MAX_SKEW_S, SignatureError, sign, verify_signature};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    secret: &'a [u8],
    signed_at: i64,
    now: i64,
    flip_at: usize,
    flip_bit: u8,
    timestamp_header: &'a str,
    signature_header: &'a str,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    signed(&input);
    made_up(&input);
});

fn within_skew(signed_at: i64, now: i64) -> bool {
    (i128::from(now) - i128::from(signed_at)).abs() <= i128::from(MAX_SKEW_S)
}

fn signed(input: &Input<'_>) {
    let Input {
        secret,
        signed_at,
        now,
        body,
        ..
    } = *input;
    let signature = sign(secret, signed_at, body);
    let timestamp = signed_at.to_string();
    let check = |secret: &[u8], signature: &str, body: &[u8]| {
        verify_signature(secret, Some(&timestamp), Some(signature), body, now)
    };

    let verdict = check(secret, &signature, body);
    if within_skew(signed_at, now) {
        assert_eq!(verdict, Ok(()), "a fresh, correctly signed body is refused");
    } else {
        assert_eq!(
            verdict,
            Err(SignatureError::Skewed),
            "signed at {signed_at}, checked at {now}: outside the skew window yet not refused as skewed"
        );
        return;
    }

    if !body.is_empty() {
        let mut flipped = body.to_vec();
        flipped[input.flip_at % body.len()] ^= 1 << (input.flip_bit % 8);
        assert_eq!(
            check(secret, &signature, &flipped),
            Err(SignatureError::Mismatch)
        );
    }

    // Change one hex digit of the signature (after `v1=`) to another hex digit.
    let mut digits = signature.clone().into_bytes();
    let at = 3 + input.flip_at % (digits.len() - 3);
    digits[at] = if digits[at] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(digits).unwrap();
    assert_eq!(
        check(secret, &tampered, body),
        Err(SignatureError::Mismatch)
    );

    // Another secret (a flipped bit; appending zero bytes would be the same HMAC key).
    let mut other = secret.to_vec();
    if other.is_empty() {
        other.push(1);
    } else {
        let i = input.flip_at % other.len();
        other[i] ^= 1 << (input.flip_bit % 8);
    }
    assert_eq!(
        check(&other, &signature, body),
        Err(SignatureError::Mismatch)
    );
}

fn made_up(input: &Input<'_>) {
    let verdict = verify_signature(
        input.secret,
        Some(input.timestamp_header),
        Some(input.signature_header),
        input.body,
        input.now,
    );
    if verdict.is_ok() {
        let signed_at: i64 = input.timestamp_header.trim().parse().unwrap();
        assert!(within_skew(signed_at, input.now));
        let given = input.signature_header.trim().to_ascii_lowercase();
        assert_eq!(given, sign(input.secret, signed_at, input.body));
    }
}

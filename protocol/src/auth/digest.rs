//! The cryptographic primitives the signatures are made of: SHA-256, HMAC-SHA256, lower-case
//! hex, the `V11-HMAC-SHA256` key derivation, and a comparison that does not leak where two
//! signatures first differ.
//!
//! Kept apart from the canonicalisation so that what is hashed and how it is hashed can be
//! read (and tested) separately.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// `HMAC-SHA256(key, msg)`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length (long keys are hashed first), so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex of `SHA-256(bytes)`, the form every line of the signature algorithm uses.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_lower(&Sha256::digest(bytes))
}

/// Lower-case hex, two characters per byte.
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Compares two byte strings without an early exit on content, so the time taken does not
/// reveal how many leading bytes of a guessed signature were right. A length mismatch returns
/// `false` at once: signature lengths are public.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        // `black_box` keeps the optimiser from turning the fold back into a search for the
        // first differing byte.
        difference = std::hint::black_box(difference | (x ^ y));
    }
    difference == 0
}

/// The `V11-HMAC-SHA256` signing key for one credential scope (`info` =
/// `YYYYMMDD/region/service`), spec §4.3: one-block HKDF-SHA256 with salt = AK, input = SK,
/// whose 32-byte output is used *as its 64-character lower-hex string*.
pub(super) fn v11_signing_key(access_key: &str, secret_key: &str, info: &str) -> String {
    let pseudo_random_key = hmac_sha256(access_key.as_bytes(), secret_key.as_bytes());
    let mut expand_input = Vec::with_capacity(info.len() + 1);
    expand_input.extend_from_slice(info.as_bytes());
    expand_input.push(0x01);
    hex_lower(&hmac_sha256(&pseudo_random_key, &expand_input))
}

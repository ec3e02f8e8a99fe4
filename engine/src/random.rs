//! Random values from the OS: secrets, tokens, ids. Thin wrappers over `getrandom`.

/// Letters and digits: the alphabet of generated secrets, tokens and keys.
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn fill(bytes: &mut [u8]) {
    // Without OS randomness no secret can be made safely; there is nothing sensible to fall back to.
    getrandom::getrandom(bytes).expect("the OS random source is available");
}

pub fn u64() -> u64 {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// `length` characters of `[A-Za-z0-9]`, uniformly (rejection sampling, no modulo bias).
pub fn alphanumeric(length: usize) -> String {
    let mut out = String::with_capacity(length);
    let mut pool = [0u8; 64];
    while out.len() < length {
        fill(&mut pool);
        for byte in pool {
            // 248 = 4 × 62: bytes at or above it would favour the first letters.
            if byte < 248 && out.len() < length {
                out.push(ALPHANUMERIC[(byte % 62) as usize] as char);
            }
        }
    }
    out
}

/// `length` lowercase hex digits.
pub fn hex(length: usize) -> String {
    let mut bytes = vec![0u8; length.div_ceil(2)];
    fill(&mut bytes);
    let mut text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    text.truncate(length);
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn shapes() {
        let secret = super::alphanumeric(32);
        assert_eq!(secret.len(), 32);
        assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(super::alphanumeric(32), secret);
        let hex = super::hex(24);
        assert_eq!(hex.len(), 24);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}

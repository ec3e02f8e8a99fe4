//! Standard base64 (RFC 4648 §4, with `=` padding) for CreateMessage's `encoding: base64`
//! (spec §2.7): the platform passes the decoded bytes to the device. Strict: the length must be
//! a multiple of 4, padding only at the end, and the unused bits of the last symbol must be 0,
//! so every accepted text has exactly one meaning.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a text is not base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not standard base64: {0}")]
pub struct Base64Error(&'static str);

fn value_of(symbol: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == symbol).map(|p| p as u32)
}

pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(Base64Error("the length is not a multiple of 4"));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (index, quad) in bytes.chunks_exact(4).enumerate() {
        let padding = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if padding > 2 || (padding > 0 && index + 1 != quads) {
            return Err(Base64Error("misplaced '=' padding"));
        }
        let mut bits = 0u32;
        for &symbol in &quad[..4 - padding] {
            bits = (bits << 6) | value_of(symbol).ok_or(Base64Error("a character outside the alphabet"))?;
        }
        bits <<= 6 * padding as u32;
        let decoded = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        let kept = 3 - padding;
        if decoded[kept..].iter().any(|&b| b != 0) {
            return Err(Base64Error("non-zero bits after the last byte"));
        }
        out.extend_from_slice(&decoded[..kept]);
    }
    Ok(out)
}

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let bits = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((bits >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4648_vectors_round_trip() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes());
        }
        let binary: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&binary)).unwrap(), binary);
    }

    #[test]
    fn malformed_texts_are_refused() {
        for bad in ["Zg", "Zg=", "Z===", "Zg==Zm9v", "Zm9*", "Zh==", "Zm9=", "Zm 9v"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}

//! Framing primitives: the fixed header, variable byte integers, and a reader whose every
//! field access is bounds-checked against the frame (a field running past the end is a
//! malformed packet, never a panic and never "wait for more bytes").

use bytes::{BufMut, BytesMut};

use super::CodecError;

/// A variable byte integer has at most four bytes (MQTT 3.1.1 §2.2.3, 5.0 §1.5.5).
const VARIABLE_INT_BYTES_MAX: usize = 4;
/// The largest value four bytes can encode.
pub(super) const VARIABLE_INT_MAX: usize = 268_435_455;

/// The first bytes of every packet: type and flags, then the remaining length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FixedHeader {
    pub byte1: u8,
    /// 2..=5: byte 1 plus the remaining-length bytes.
    pub header_bytes: usize,
    pub remaining_bytes: usize,
}

impl FixedHeader {
    /// `Ok(None)` while the header itself is incomplete.
    pub fn parse(buffer: &[u8]) -> Result<Option<Self>, CodecError> {
        let Some((&byte1, rest)) = buffer.split_first() else {
            return Ok(None);
        };
        let Some((remaining_bytes, length_bytes)) = read_variable_int(rest)? else {
            return Ok(None);
        };
        Ok(Some(FixedHeader { byte1, header_bytes: 1 + length_bytes, remaining_bytes }))
    }

    pub fn packet_type(&self) -> u8 {
        self.byte1 >> 4
    }

    pub fn flags(&self) -> u8 {
        self.byte1 & 0x0f
    }

    pub fn frame_bytes(&self) -> usize {
        self.header_bytes + self.remaining_bytes
    }

    /// The same header in mqttbytes' type, for its per-packet readers.
    pub fn to_mqttbytes(self) -> mqttbytes::FixedHeader {
        mqttbytes::FixedHeader::new(self.byte1, self.header_bytes - 1, self.remaining_bytes)
    }
}

/// Reads a variable byte integer from the front of `bytes`: `(value, bytes used)`, or
/// `Ok(None)` if it may still be completed by more bytes.
pub(super) fn read_variable_int(bytes: &[u8]) -> Result<Option<(usize, usize)>, CodecError> {
    let mut value = 0;
    for (index, &byte) in bytes.iter().take(VARIABLE_INT_BYTES_MAX).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Some((value, index + 1)));
        }
    }
    if bytes.len() >= VARIABLE_INT_BYTES_MAX {
        return Err(CodecError::Malformed("a variable byte integer is longer than 4 bytes".into()));
    }
    Ok(None)
}

/// Appends `value` as a variable byte integer. Panics above [`VARIABLE_INT_MAX`]: callers
/// size their packets first.
pub(super) fn write_variable_int(out: &mut BytesMut, value: usize) {
    assert!(value <= VARIABLE_INT_MAX, "{value} does not fit a variable byte integer");
    let mut rest = value;
    loop {
        let low_bits = (rest % 128) as u8;
        rest /= 128;
        if rest == 0 {
            out.put_u8(low_bits);
            return;
        }
        out.put_u8(low_bits | 0x80);
    }
}

/// Appends a length-prefixed UTF-8 string. Panics above 65,535 bytes.
pub(super) fn write_string(out: &mut BytesMut, text: &str) {
    let length = u16::try_from(text.len()).expect("MQTT strings are at most 65,535 bytes");
    out.put_u16(length);
    out.put_slice(text.as_bytes());
}

/// A cursor over one packet's body. `packet` names the packet in error messages.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
    packet: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(body: &'a [u8], packet: &'static str) -> Self {
        Reader { rest: body, packet }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn remaining_bytes(&self) -> usize {
        self.rest.len()
    }

    pub fn take(&mut self, count: usize, field: &str) -> Result<&'a [u8], CodecError> {
        if count > self.rest.len() {
            return Err(self.malformed(&format!("{field} runs past the end of the packet")));
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Ok(taken)
    }

    pub fn u8(&mut self, field: &str) -> Result<u8, CodecError> {
        Ok(self.take(1, field)?[0])
    }

    pub fn u16(&mut self, field: &str) -> Result<u16, CodecError> {
        let bytes = self.take(2, field)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// A length-prefixed UTF-8 string [MQTT-1.5.3-1].
    pub fn string(&mut self, field: &str) -> Result<String, CodecError> {
        let length = usize::from(self.u16(field)?);
        let bytes = self.take(length, field)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.malformed(&format!("[MQTT-1.5.3-1] {field} is not valid UTF-8")))
    }

    /// A packet identifier, which must not be 0 (3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3]).
    pub fn packet_id(&mut self) -> Result<u16, CodecError> {
        let packet_id = self.u16("the packet identifier")?;
        if packet_id == 0 {
            return Err(CodecError::ProtocolViolation(format!(
                "[MQTT-2.3.1-1] {} with packet identifier 0",
                self.packet
            )));
        }
        Ok(packet_id)
    }

    /// Skips a v5 property block (length, then that many bytes) without interpreting it.
    pub fn skip_properties(&mut self) -> Result<(), CodecError> {
        let Some((length, length_bytes)) = read_variable_int(self.rest)? else {
            return Err(self.malformed("the property length runs past the end of the packet"));
        };
        self.take(length_bytes + length, "the properties")?;
        Ok(())
    }

    /// Fails unless the whole body was read.
    pub fn finish(&self) -> Result<(), CodecError> {
        if self.rest.is_empty() {
            return Ok(());
        }
        Err(self.malformed(&format!("{} unexpected bytes at the end", self.rest.len())))
    }

    fn malformed(&self, detail: &str) -> CodecError {
        CodecError::Malformed(format!("{}: {detail}", self.packet))
    }
}

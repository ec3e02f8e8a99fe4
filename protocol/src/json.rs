//! JSON in and out. simd-json parses in place, so input is copied into an owned buffer first
//! (NOTES.md); output goes through serde with simd-json's writer.
//!
//! Input is parsed into a value tree and then read through [`StrictDeserializer`], which only
//! lets a JSON **object** become a struct. serde's derived `Deserialize` also accepts an array
//! for a struct, filling fields by position — so `[null, "node-1", "meter"]` would register a
//! device. No REST body of IoTDA is positional, so that door stays shut at every depth.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{forward_to_deserialize_any, Serialize};
use simd_json::{OwnedValue, StaticNode};

use crate::error::JsonError;

/// Parses `bytes` as `T`. An empty body is an error, like any other non-JSON.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut owned = bytes.to_vec();
    let value: OwnedValue = simd_json::to_owned_value(&mut owned).map_err(|e| JsonError(e.to_string()))?;
    T::deserialize(StrictDeserializer(value)).map_err(|e| JsonError(e.0))
}

/// Serializes `value` to compact JSON bytes.
pub fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain data structs cannot fail; a failure here is a bug in a Serialize impl.
    simd_json::serde::to_vec(value).expect("serializing a plain data struct never fails")
}

/// A deserialization error: its message becomes the 400's `error_msg`.
#[derive(Debug)]
pub struct DeError(String);

impl std::fmt::Display for DeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        DeError(message.to_string())
    }
}

/// A value tree read by serde, with structs accepted only from objects.
#[derive(Debug)]
pub struct StrictDeserializer(pub OwnedValue);

impl<'de> de::Deserializer<'de> for StrictDeserializer {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            OwnedValue::Static(node) => visit_static(node, visitor),
            OwnedValue::String(text) => visitor.visit_string(text),
            OwnedValue::Array(items) => visitor.visit_seq(Elements(items.into_iter())),
            OwnedValue::Object(entries) => {
                visitor.visit_map(Entries { entries: entries.into_iter(), value: None })
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            OwnedValue::Static(StaticNode::Null) => visitor.visit_none(),
            value => visitor.visit_some(StrictDeserializer(value)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            OwnedValue::Object(entries) => {
                visitor.visit_map(Entries { entries: entries.into_iter(), value: None })
            }
            other => Err(DeError(format!("expected a JSON object for {name}, found {}", kind_of(&other)))),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            OwnedValue::String(text) => visitor.visit_enum(text.into_deserializer()),
            other => Err(DeError(format!("expected a string for {name}, found {}", kind_of(&other)))),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

fn visit_static<'de, V: Visitor<'de>>(node: StaticNode, visitor: V) -> Result<V::Value, DeError> {
    #[allow(unreachable_patterns)] // 128-bit variants exist only under a simd-json feature
    match node {
        StaticNode::Null => visitor.visit_unit(),
        StaticNode::Bool(b) => visitor.visit_bool(b),
        StaticNode::I64(n) => visitor.visit_i64(n),
        StaticNode::U64(n) => visitor.visit_u64(n),
        StaticNode::F64(n) => visitor.visit_f64(n),
        _ => Err(DeError("number out of range".into())),
    }
}

fn kind_of(value: &OwnedValue) -> &'static str {
    match value {
        OwnedValue::Static(StaticNode::Null) => "null",
        OwnedValue::Static(StaticNode::Bool(_)) => "a boolean",
        OwnedValue::Static(_) => "a number",
        OwnedValue::String(_) => "a string",
        OwnedValue::Array(_) => "an array",
        OwnedValue::Object(_) => "an object",
    }
}

struct Elements(std::vec::IntoIter<OwnedValue>);

impl<'de> SeqAccess<'de> for Elements {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        self.0.next().map(|value| seed.deserialize(StrictDeserializer(value))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<I> {
    entries: I,
    value: Option<OwnedValue>,
}

impl<'de, I: Iterator<Item = (String, OwnedValue)>> MapAccess<'de> for Entries<I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        self.value = Some(value);
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let value = self.value.take().ok_or_else(|| DeError("a map value was read before its key".into()))?;
        seed.deserialize(StrictDeserializer(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Inner {
        name: String,
        level: Option<i64>,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Outer {
        id: String,
        ratio: f64,
        inner: Vec<Inner>,
        #[serde(default)]
        extra: Option<OwnedValue>,
    }

    #[test]
    fn objects_become_structs() {
        let parsed: Outer = from_bytes(
            br#"{"id":"a","ratio":2,"inner":[{"name":"x","level":null},{"name":"y","level":-3}],"extra":{"k":[1,"two"]}}"#,
        )
        .unwrap();
        assert_eq!(parsed.id, "a");
        assert_eq!(parsed.ratio, 2.0);
        assert_eq!(parsed.inner[1], Inner { name: "y".into(), level: Some(-3) });
        assert!(parsed.extra.is_some());
    }

    #[test]
    fn arrays_never_become_structs_at_any_depth() {
        let top = from_bytes::<Outer>(br#"["a", 1.0, []]"#).unwrap_err();
        assert!(top.0.contains("expected a JSON object"), "{top}");
        let nested = from_bytes::<Outer>(br#"{"id":"a","ratio":1,"inner":[["x", 1]]}"#).unwrap_err();
        assert!(nested.0.contains("expected a JSON object for Inner"), "{nested}");
    }

    #[test]
    fn malformed_json_and_wrong_types_are_errors() {
        assert!(from_bytes::<Outer>(b"").is_err());
        assert!(from_bytes::<Outer>(b"{\"id\":").is_err());
        assert!(from_bytes::<Outer>(br#"{"id":5,"ratio":1,"inner":[]}"#).is_err());
        assert!(from_bytes::<Outer>(br#"{"ratio":1,"inner":[]}"#).unwrap_err().0.contains("id"));
    }
}

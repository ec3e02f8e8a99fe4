//! JSON in and out. simd-json parses in place, so input is copied into an owned buffer first
//! (NOTES.md); output goes through serde with simd-json's writer.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::JsonError;

/// Parses `bytes` as `T`. An empty body is an error, like any other non-JSON.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut owned = bytes.to_vec();
    simd_json::serde::from_slice::<T>(&mut owned).map_err(|e| JsonError(e.to_string()))
}

/// Serializes `value` to compact JSON bytes.
pub fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain data structs cannot fail; a failure here is a bug in a Serialize impl.
    simd_json::serde::to_vec(value).expect("serializing a plain data struct never fails")
}

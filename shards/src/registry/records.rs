//! What the registry writes to the shard log, as rkyv structs, and how each maps to a
//! [`LogRecord`] kind and version.
//!
//! | kind | version | body |
//! |---|---|---|
//! | 1 `DEVICE_PUT` | 1 | [`DeviceRecord`] — the whole device after a create or update |
//! | 2 `DEVICE_DELETE` | 1 | [`DeviceKey`] |
//! | 3 `PRODUCT_PUT` | 1 | [`ProductRecord`] — shard 0 only |
//! | 4 `PRODUCT_DELETE` | 1 | [`ProductKey`] — shard 0 only |
//!
//! rkyv has no schema evolution: a new field means a new version number, and the reader keeps
//! decoding every version it ever wrote. Whole-record puts (not field patches) keep replay and
//! snapshots trivial: the state is "the last put of each key".

use rkyv::rancor::BoxedError;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::log::LogRecord;

pub const DEVICE_PUT: u16 = 1;
pub const DEVICE_DELETE: u16 = 2;
pub const PRODUCT_PUT: u16 = 3;
pub const PRODUCT_DELETE: u16 = 4;
pub const VERSION_1: u16 = 1;

/// A device's connection status, stored as a byte.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub enum DeviceStatus {
    Inactive,
    Online,
    Offline,
    Frozen,
}

impl DeviceStatus {
    /// The spelling of spec §2.4.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Inactive => "INACTIVE",
            DeviceStatus::Online => "ONLINE",
            DeviceStatus::Offline => "OFFLINE",
            DeviceStatus::Frozen => "FROZEN",
        }
    }
}

/// Everything the home shard knows about one device. `Debug` leaves the secret out.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq)]
pub struct DeviceRecord {
    /// 96-bit ordering id, shown as the 24-hex `marker` of list pages.
    pub record_id: u128,
    pub project_id: String,
    pub device_id: String,
    pub node_id: String,
    pub product_id: String,
    pub app_id: String,
    pub gateway_id: String,
    pub device_name: Option<String>,
    pub description: Option<String>,
    pub auth_type: String,
    /// Never logged, never listed.
    pub secret: Option<String>,
    pub fingerprint: Option<String>,
    pub secure_access: bool,
    pub timeout_s: u32,
    /// JSON text of `extension_info`, as given.
    pub extension_info_json: Option<String>,
    /// JSON text of the initial `shadow` (desired values), as given.
    pub initial_shadow_json: Option<String>,
    pub status: DeviceStatus,
    pub create_time_ms: i64,
    pub connection_status_update_time_ms: Option<i64>,
    pub active_time_ms: Option<i64>,
}

impl std::fmt::Debug for DeviceRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRecord")
            .field("record_id", &self.record_id)
            .field("project_id", &self.project_id)
            .field("device_id", &self.device_id)
            .field("product_id", &self.product_id)
            .field("status", &self.status)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Identifies a device in a delete record.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeviceKey {
    pub device_id: String,
}

/// A product, kept as the JSON text of `protocol::model::Product` plus its keys. JSON keeps the
/// model's many optional fields out of the rkyv schema, so the model can grow without a new
/// record version.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProductRecord {
    pub record_id: u128,
    pub project_id: String,
    pub product_id: String,
    pub product_json: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProductKey {
    pub project_id: String,
    pub product_id: String,
}

/// A log record the registry understands.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryRecord {
    DevicePut(Box<DeviceRecord>),
    DeviceDelete(DeviceKey),
    ProductPut(ProductRecord),
    ProductDelete(ProductKey),
}

/// A record that cannot be decoded: unknown kind or version, or a body that fails validation.
#[derive(Debug, thiserror::Error)]
#[error("log record kind {kind} version {version}: {reason}")]
pub struct DecodeError {
    pub kind: u16,
    pub version: u16,
    pub reason: String,
}

impl RegistryRecord {
    pub fn encode(&self) -> LogRecord {
        let (kind, body) = match self {
            RegistryRecord::DevicePut(r) => (DEVICE_PUT, rkyv::to_bytes::<BoxedError>(&**r)),
            RegistryRecord::DeviceDelete(r) => (DEVICE_DELETE, rkyv::to_bytes::<BoxedError>(r)),
            RegistryRecord::ProductPut(r) => (PRODUCT_PUT, rkyv::to_bytes::<BoxedError>(r)),
            RegistryRecord::ProductDelete(r) => (PRODUCT_DELETE, rkyv::to_bytes::<BoxedError>(r)),
        };
        // Serializing owned strings and integers into a growable buffer cannot fail.
        let body = body.expect("rkyv serialization of a plain record never fails");
        LogRecord { kind, version: VERSION_1, body: body.to_vec() }
    }

    pub fn decode(record: &LogRecord) -> Result<Self, DecodeError> {
        let error = |reason: String| DecodeError { kind: record.kind, version: record.version, reason };
        if record.version != VERSION_1 {
            return Err(error("unknown version (written by a newer ringiot?)".into()));
        }
        // rkyv needs aligned input; the log hands out plain bytes.
        let mut aligned = AlignedVec::<16>::with_capacity(record.body.len());
        aligned.extend_from_slice(&record.body);
        let decoded = match record.kind {
            DEVICE_PUT => rkyv::from_bytes::<DeviceRecord, BoxedError>(&aligned)
                .map(|d| RegistryRecord::DevicePut(Box::new(d))),
            DEVICE_DELETE => {
                rkyv::from_bytes::<DeviceKey, BoxedError>(&aligned).map(RegistryRecord::DeviceDelete)
            }
            PRODUCT_PUT => {
                rkyv::from_bytes::<ProductRecord, BoxedError>(&aligned).map(RegistryRecord::ProductPut)
            }
            PRODUCT_DELETE => {
                rkyv::from_bytes::<ProductKey, BoxedError>(&aligned).map(RegistryRecord::ProductDelete)
            }
            _ => return Err(error("unknown kind".into())),
        };
        decoded.map_err(|e| error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> DeviceRecord {
        DeviceRecord {
            record_id: 0x0123_4567_89ab_cdef_0123_4567,
            project_id: "p1".into(),
            device_id: "prod_node".into(),
            node_id: "node".into(),
            product_id: "prod".into(),
            app_id: "default".into(),
            gateway_id: "prod_node".into(),
            device_name: Some("pump ü".into()),
            description: None,
            auth_type: "SECRET".into(),
            secret: Some("secret-123".into()),
            fingerprint: None,
            secure_access: false,
            timeout_s: 0,
            extension_info_json: Some("{\"a\":1}".into()),
            initial_shadow_json: None,
            status: DeviceStatus::Inactive,
            create_time_ms: 1_700_000_000_000,
            connection_status_update_time_ms: None,
            active_time_ms: None,
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let records = [
            RegistryRecord::DevicePut(Box::new(device())),
            RegistryRecord::DeviceDelete(DeviceKey { device_id: "d".into() }),
            RegistryRecord::ProductPut(ProductRecord {
                record_id: 7,
                project_id: "p".into(),
                product_id: "x".into(),
                product_json: "{}".into(),
            }),
            RegistryRecord::ProductDelete(ProductKey { project_id: "p".into(), product_id: "x".into() }),
        ];
        for record in records {
            assert_eq!(RegistryRecord::decode(&record.encode()).unwrap(), record);
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        assert!(!format!("{:?}", device()).contains("secret-123"));
    }

    #[test]
    fn garbage_and_unknown_kinds_are_errors_not_panics() {
        let mut encoded = RegistryRecord::DevicePut(Box::new(device())).encode();
        encoded.body.truncate(encoded.body.len() / 2);
        assert!(RegistryRecord::decode(&encoded).is_err());
        let unknown = LogRecord { kind: 99, version: 1, body: vec![] };
        assert!(RegistryRecord::decode(&unknown).is_err());
        let newer = LogRecord { kind: DEVICE_PUT, version: 2, body: vec![] };
        assert!(RegistryRecord::decode(&newer).unwrap_err().to_string().contains("newer"));
    }
}

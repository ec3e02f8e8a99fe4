//! What the registry writes to the shard log, as rkyv structs, and how each maps to a
//! [`LogRecord`] kind and version.
//!
//! Every body is the change's **revision** (u64, little-endian; the shard's change counter at
//! the moment memory changed) followed by the rkyv bytes of the record:
//!
//! | kind | version | rkyv part |
//! |---|---|---|
//! | 1 `DEVICE_PUT` | 2 | [`DeviceRecord`] — the whole device after a create or update (version 1, without the secondary credentials, is still read: [`super::legacy_records`]) |
//! | 2 `DEVICE_DELETE` | 1 | [`DeviceKey`] |
//! | 3 `PRODUCT_PUT` | 1 | [`ProductRecord`] — shard 0 only |
//! | 4 `PRODUCT_DELETE` | 1 | [`ProductKey`] — shard 0 only |
//! | 5 `SNAPSHOT_MARK` | 1 | nothing: first record of a snapshot; its revision covers the snapshot |
//! | 6 `SHADOW_PUT` | 1 | [`ShadowRecord`] — a device's whole shadow after a change |
//! | 7 `MESSAGE_PUT` | 1 | [`MessageRecord`] — a downlink message after it was accepted or changed status |
//! | 8 `MESSAGE_DELETE` | 1 | [`MessageKey`] — a message left the device's history (evicted) |
//! | 9 `ROUTING_PUT` | 1 | [`RoutingRecord`] — a routing rule or rule action — shard 0 only |
//! | 10 `ROUTING_DELETE` | 1 | [`RoutingKey`] — shard 0 only |
//! | 11 `BATCH_TASK_PUT` | 1 | [`BatchTaskRecord`] — a batch task's definition (and stop flag) — shard 0 only |
//! | 12 `BATCH_RESULTS` | 1 | [`BatchResultsRecord`] — final results of some of a task's targets — shard 0 only |
//! | 13 `BATCH_TASK_DELETE` | 1 | [`BatchTaskKey`] — shard 0 only |
//!
//! Replay keeps, per key, the change with the highest revision, so the state after recovery is
//! the state in memory even if two appends reached the log in another order than they changed
//! memory (an append that waited for buffer space can be overtaken). Whole-record puts (not
//! field patches) keep that rule trivial.
//!
//! rkyv has no schema evolution: a new field means a new version number, and the reader keeps
//! decoding every version it ever wrote.

use rkyv::rancor::BoxedError;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::log::LogRecord;

pub const DEVICE_PUT: u16 = 1;
pub const DEVICE_DELETE: u16 = 2;
pub const PRODUCT_PUT: u16 = 3;
pub const PRODUCT_DELETE: u16 = 4;
pub const SNAPSHOT_MARK: u16 = 5;
pub const SHADOW_PUT: u16 = 6;
pub const MESSAGE_PUT: u16 = 7;
pub const MESSAGE_DELETE: u16 = 8;
pub const ROUTING_PUT: u16 = 9;
pub const ROUTING_DELETE: u16 = 10;
pub const BATCH_TASK_PUT: u16 = 11;
pub const BATCH_RESULTS: u16 = 12;
pub const BATCH_TASK_DELETE: u16 = 13;
pub const VERSION_1: u16 = 1;
/// `DEVICE_PUT` with `secondary_secret` and `secondary_fingerprint`.
pub const VERSION_2: u16 = 2;

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
    /// Also accepted at login; never logged, never listed.
    pub secondary_secret: Option<String>,
    /// SHA-1 (40 hex) or SHA-256 (64 hex) of a CERTIFICATES device's client certificate.
    pub fingerprint: Option<String>,
    pub secondary_fingerprint: Option<String>,
    /// The device may connect over TLS only (plain MQTT gets CONNACK 5).
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
            .field("secondary_secret", &self.secondary_secret.as_ref().map(|_| "<redacted>"))
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

/// A device's shadow, as the JSON text of `protocol::shadow::DeviceShadow` (the model of the
/// shadow grows with the product model; JSON keeps it out of the rkyv schema).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ShadowRecord {
    pub device_id: String,
    pub shadow_json: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProductKey {
    pub project_id: String,
    pub product_id: String,
}

/// Where a downlink message is in its life (spec §2.7).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub enum MessageStatus {
    Pending,
    Delivered,
    Failed,
    Timeout,
}

impl MessageStatus {
    /// The spelling of spec §2.7.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "PENDING",
            MessageStatus::Delivered => "DELIVERED",
            MessageStatus::Failed => "FAILED",
            MessageStatus::Timeout => "TIMEOUT",
        }
    }

    pub fn is_final(self) -> bool {
        self != MessageStatus::Pending
    }
}

/// One downlink message of a device, as CreateMessage accepted it plus its current status.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub device_id: String,
    pub message_id: String,
    /// Acceptance order on the home shard: delivery order, and the oldest is evicted first.
    pub seq: u64,
    pub name: Option<String>,
    /// The `message` field as JSON text (a string is kept with its quotes).
    pub message_json: String,
    /// `none` or `base64`.
    pub encoding: String,
    /// `standard` or `raw`.
    pub payload_format: String,
    pub topic: Option<String>,
    pub topic_full_name: Option<String>,
    /// JSON text of `properties` (MQTT 5 publish properties), as given.
    pub properties_json: Option<String>,
    pub ttl_minutes: u32,
    pub status: MessageStatus,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
}

/// Identifies a message in a delete record.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MessageKey {
    pub device_id: String,
    pub message_id: String,
}

/// A rule-engine document (spec §2.10): a routing rule or a rule action, as the JSON text of
/// `protocol::rules::Rule` / `Action`. Shard 0 writes them; every shard keeps a copy.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RoutingRecord {
    pub project_id: String,
    /// The rule id or action id (unique across both).
    pub id: String,
    pub is_action: bool,
    pub json: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutingKey {
    pub project_id: String,
    pub id: String,
}

/// A batch task as CreateBatchTask made it (spec §2.8); its results are separate records.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BatchTaskRecord {
    pub project_id: String,
    pub task_id: String,
    pub task_name: String,
    pub task_type: String,
    pub app_id: Option<String>,
    /// The `document` as JSON text.
    pub document_json: String,
    /// Device ids, without duplicates; a result names its target by index here.
    pub targets: Vec<String>,
    pub created_ms: i64,
    pub stop_requested: bool,
}

/// The final outcome of one target.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BatchResult {
    pub index: u32,
    /// 2 Success, 3 Fail, 4 Stopped (the order of `protocol::batch::TargetStatus::ALL`).
    pub status: u8,
    pub output: Option<String>,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BatchResultsRecord {
    pub project_id: String,
    pub task_id: String,
    pub results: Vec<BatchResult>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchTaskKey {
    pub project_id: String,
    pub task_id: String,
}

/// A log record the registry understands.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryRecord {
    DevicePut(Box<DeviceRecord>),
    DeviceDelete(DeviceKey),
    ProductPut(ProductRecord),
    ProductDelete(ProductKey),
    /// Opens a snapshot: everything up to its revision is in the records that follow.
    SnapshotMark,
    ShadowPut(ShadowRecord),
    MessagePut(Box<MessageRecord>),
    MessageDelete(MessageKey),
    RoutingPut(RoutingRecord),
    RoutingDelete(RoutingKey),
    BatchTaskPut(Box<BatchTaskRecord>),
    BatchResults(Box<BatchResultsRecord>),
    BatchTaskDelete(BatchTaskKey),
}

/// Bytes of the revision that starts every body.
const REVISION_BYTES: usize = 8;

/// A record that cannot be decoded: unknown kind or version, or a body that fails validation.
#[derive(Debug, thiserror::Error)]
#[error("log record kind {kind} version {version}: {reason}")]
pub struct DecodeError {
    pub kind: u16,
    pub version: u16,
    pub reason: String,
}

impl RegistryRecord {
    /// The log record of this change, made at `revision`.
    pub fn encode(&self, revision: u64) -> LogRecord {
        let (kind, rkyv_bytes) = match self {
            RegistryRecord::DevicePut(r) => (DEVICE_PUT, rkyv::to_bytes::<BoxedError>(&**r)),
            RegistryRecord::DeviceDelete(r) => (DEVICE_DELETE, rkyv::to_bytes::<BoxedError>(r)),
            RegistryRecord::ProductPut(r) => (PRODUCT_PUT, rkyv::to_bytes::<BoxedError>(r)),
            RegistryRecord::ProductDelete(r) => (PRODUCT_DELETE, rkyv::to_bytes::<BoxedError>(r)),
            RegistryRecord::SnapshotMark => (SNAPSHOT_MARK, Ok(AlignedVec::new())),
            RegistryRecord::ShadowPut(r) => (SHADOW_PUT, rkyv::to_bytes::<BoxedError>(r)),
            RegistryRecord::MessagePut(r) => (MESSAGE_PUT, rkyv::to_bytes::<BoxedError>(&**r)),
            RegistryRecord::MessageDelete(r) => (MESSAGE_DELETE, rkyv::to_bytes::<BoxedError>(r)),
            RegistryRecord::RoutingPut(r) => (ROUTING_PUT, rkyv::to_bytes::<BoxedError>(r)),
            RegistryRecord::RoutingDelete(r) => (ROUTING_DELETE, rkyv::to_bytes::<BoxedError>(r)),
            RegistryRecord::BatchTaskPut(r) => (BATCH_TASK_PUT, rkyv::to_bytes::<BoxedError>(&**r)),
            RegistryRecord::BatchResults(r) => (BATCH_RESULTS, rkyv::to_bytes::<BoxedError>(&**r)),
            RegistryRecord::BatchTaskDelete(r) => (BATCH_TASK_DELETE, rkyv::to_bytes::<BoxedError>(r)),
        };
        // Serializing owned strings and integers into a growable buffer cannot fail.
        let rkyv_bytes = rkyv_bytes.expect("rkyv serialization of a plain record never fails");
        let mut body = Vec::with_capacity(REVISION_BYTES + rkyv_bytes.len());
        body.extend_from_slice(&revision.to_le_bytes());
        body.extend_from_slice(&rkyv_bytes);
        let version = if kind == DEVICE_PUT { VERSION_2 } else { VERSION_1 };
        LogRecord { kind, version, body }
    }

    /// The change and its revision. Every body is validated by rkyv's checked access.
    pub fn decode(record: &LogRecord) -> Result<(u64, Self), DecodeError> {
        let error = |reason: String| DecodeError { kind: record.kind, version: record.version, reason };
        let known = match record.kind {
            DEVICE_PUT => matches!(record.version, VERSION_1 | VERSION_2),
            _ => record.version == VERSION_1,
        };
        if !known {
            return Err(error("unknown version (written by a newer ringiot?)".into()));
        }
        let Some((revision, rkyv_part)) = record.body.split_first_chunk::<REVISION_BYTES>() else {
            return Err(error("body shorter than its revision".into()));
        };
        let revision = u64::from_le_bytes(*revision);
        // rkyv needs aligned input; the log hands out plain bytes.
        let mut aligned = AlignedVec::<16>::with_capacity(rkyv_part.len());
        aligned.extend_from_slice(rkyv_part);
        let decoded = match record.kind {
            DEVICE_PUT if record.version == VERSION_1 => {
                rkyv::from_bytes::<super::legacy_records::DeviceRecordV1, BoxedError>(&aligned)
                    .map(|d| RegistryRecord::DevicePut(Box::new(d.into())))
            }
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
            SNAPSHOT_MARK if rkyv_part.is_empty() => Ok(RegistryRecord::SnapshotMark),
            SHADOW_PUT => {
                rkyv::from_bytes::<ShadowRecord, BoxedError>(&aligned).map(RegistryRecord::ShadowPut)
            }
            MESSAGE_PUT => rkyv::from_bytes::<MessageRecord, BoxedError>(&aligned)
                .map(|m| RegistryRecord::MessagePut(Box::new(m))),
            MESSAGE_DELETE => {
                rkyv::from_bytes::<MessageKey, BoxedError>(&aligned).map(RegistryRecord::MessageDelete)
            }
            ROUTING_PUT => {
                rkyv::from_bytes::<RoutingRecord, BoxedError>(&aligned).map(RegistryRecord::RoutingPut)
            }
            ROUTING_DELETE => {
                rkyv::from_bytes::<RoutingKey, BoxedError>(&aligned).map(RegistryRecord::RoutingDelete)
            }
            BATCH_TASK_PUT => rkyv::from_bytes::<BatchTaskRecord, BoxedError>(&aligned)
                .map(|r| RegistryRecord::BatchTaskPut(Box::new(r))),
            BATCH_RESULTS => rkyv::from_bytes::<BatchResultsRecord, BoxedError>(&aligned)
                .map(|r| RegistryRecord::BatchResults(Box::new(r))),
            BATCH_TASK_DELETE => {
                rkyv::from_bytes::<BatchTaskKey, BoxedError>(&aligned).map(RegistryRecord::BatchTaskDelete)
            }
            SNAPSHOT_MARK => return Err(error("snapshot mark with a payload".into())),
            _ => return Err(error("unknown kind".into())),
        };
        decoded.map(|record| (revision, record)).map_err(|e| error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> DeviceRecord {
        DeviceRecord {
            device_name: Some("pump ü".into()),
            secret: Some("secret-123".into()),
            extension_info_json: Some("{\"a\":1}".into()),
            ..crate::registry::devices::tests::device("prod_node", 0x0123_4567_89ab_cdef_0123_4567, "prod")
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
            RegistryRecord::SnapshotMark,
            RegistryRecord::ShadowPut(ShadowRecord { device_id: "d".into(), shadow_json: "{}".into() }),
            RegistryRecord::MessagePut(Box::new(MessageRecord {
                device_id: "d".into(),
                message_id: "m".into(),
                seq: 3,
                name: Some("n".into()),
                message_json: "\"hi ü\"".into(),
                encoding: "none".into(),
                payload_format: "standard".into(),
                topic: None,
                topic_full_name: Some("a/b".into()),
                properties_json: None,
                ttl_minutes: 5,
                status: MessageStatus::Failed,
                error_code: Some("IOTDA.014016".into()),
                error_msg: Some("offline".into()),
                created_ms: 1,
                finished_ms: Some(2),
            })),
            RegistryRecord::MessageDelete(MessageKey { device_id: "d".into(), message_id: "m".into() }),
            RegistryRecord::RoutingPut(RoutingRecord {
                project_id: "p".into(),
                id: "r".into(),
                is_action: true,
                json: "{}".into(),
            }),
            RegistryRecord::RoutingDelete(RoutingKey { project_id: "p".into(), id: "r".into() }),
            RegistryRecord::BatchTaskPut(Box::new(BatchTaskRecord {
                project_id: "p".into(),
                task_id: "t".into(),
                task_name: "n".into(),
                task_type: "createCommands".into(),
                app_id: None,
                document_json: "{}".into(),
                targets: vec!["a".into(), "b".into()],
                created_ms: 5,
                stop_requested: true,
            })),
            RegistryRecord::BatchResults(Box::new(BatchResultsRecord {
                project_id: "p".into(),
                task_id: "t".into(),
                results: vec![BatchResult {
                    index: 1,
                    status: 3,
                    output: None,
                    error_code: Some("IOTDA.014016".into()),
                    error_msg: Some("offline".into()),
                }],
            })),
            RegistryRecord::BatchTaskDelete(BatchTaskKey { project_id: "p".into(), task_id: "t".into() }),
        ];
        for (revision, record) in records.into_iter().enumerate() {
            let revision = revision as u64 * 1_000_000_007;
            assert_eq!(RegistryRecord::decode(&record.encode(revision)).unwrap(), (revision, record));
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        assert!(!format!("{:?}", device()).contains("secret-123"));
    }

    #[test]
    fn garbage_and_unknown_kinds_are_errors_not_panics() {
        let mut encoded = RegistryRecord::DevicePut(Box::new(device())).encode(1);
        encoded.body.truncate(encoded.body.len() / 2);
        assert!(RegistryRecord::decode(&encoded).is_err());
        let unknown = LogRecord { kind: 99, version: 1, body: vec![0; 8] };
        assert!(RegistryRecord::decode(&unknown).is_err());
        let unknown = LogRecord { kind: DEVICE_PUT, version: 1, body: vec![0; 3] };
        assert!(RegistryRecord::decode(&unknown).is_err());
        let newer = LogRecord { kind: DEVICE_PUT, version: 3, body: vec![] };
        assert!(RegistryRecord::decode(&newer).unwrap_err().to_string().contains("newer"));
    }
}

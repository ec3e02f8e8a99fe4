//! Record layouts the log once held, still read so that a data dir written by an older
//! ringiot starts (rkyv has no schema evolution: `records` explains the versions).
//!
//! Invariant: a layout here never changes; it is only read, and converted at once into the
//! current record with the new fields at their "not set" value.

use rkyv::{Archive, Deserialize, Serialize};

use super::records::{DeviceRecord, DeviceStatus};

/// `DEVICE_PUT` version 1: [`DeviceRecord`] before `secondary_secret` and
/// `secondary_fingerprint`.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq)]
#[allow(missing_debug_implementations)] // holds a secret; never printed
pub struct DeviceRecordV1 {
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
    pub secret: Option<String>,
    pub fingerprint: Option<String>,
    pub secure_access: bool,
    pub timeout_s: u32,
    pub extension_info_json: Option<String>,
    pub initial_shadow_json: Option<String>,
    pub status: DeviceStatus,
    pub create_time_ms: i64,
    pub connection_status_update_time_ms: Option<i64>,
    pub active_time_ms: Option<i64>,
}

impl From<DeviceRecordV1> for DeviceRecord {
    fn from(v1: DeviceRecordV1) -> DeviceRecord {
        DeviceRecord {
            record_id: v1.record_id,
            project_id: v1.project_id,
            device_id: v1.device_id,
            node_id: v1.node_id,
            product_id: v1.product_id,
            app_id: v1.app_id,
            gateway_id: v1.gateway_id,
            device_name: v1.device_name,
            description: v1.description,
            auth_type: v1.auth_type,
            secret: v1.secret,
            secondary_secret: None,
            fingerprint: v1.fingerprint,
            secondary_fingerprint: None,
            secure_access: v1.secure_access,
            timeout_s: v1.timeout_s,
            extension_info_json: v1.extension_info_json,
            initial_shadow_json: v1.initial_shadow_json,
            status: v1.status,
            create_time_ms: v1.create_time_ms,
            connection_status_update_time_ms: v1.connection_status_update_time_ms,
            active_time_ms: v1.active_time_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use rkyv::rancor::BoxedError;

    use super::*;
    use crate::log::LogRecord;
    use crate::registry::records::{RegistryRecord, DEVICE_PUT, VERSION_1};

    #[test]
    fn a_version_1_device_is_read_with_no_secondary_credentials() {
        let v1 = DeviceRecordV1 {
            record_id: 5,
            project_id: "p".into(),
            device_id: "prod_d1".into(),
            node_id: "d1".into(),
            product_id: "prod".into(),
            app_id: "app".into(),
            gateway_id: "prod_d1".into(),
            device_name: Some("meter".into()),
            description: None,
            auth_type: "CERTIFICATES".into(),
            secret: None,
            fingerprint: Some("ab".repeat(20)),
            secure_access: true,
            timeout_s: 0,
            extension_info_json: None,
            initial_shadow_json: None,
            status: DeviceStatus::Offline,
            create_time_ms: 1,
            connection_status_update_time_ms: Some(2),
            active_time_ms: Some(3),
        };
        let mut body = 9u64.to_le_bytes().to_vec();
        body.extend_from_slice(&rkyv::to_bytes::<BoxedError>(&v1).unwrap());
        let record = LogRecord { kind: DEVICE_PUT, version: VERSION_1, body };
        let (revision, decoded) = RegistryRecord::decode(&record).unwrap();
        assert_eq!(revision, 9);
        let RegistryRecord::DevicePut(device) = decoded else { panic!("a device put") };
        assert_eq!(device.fingerprint.as_deref(), Some("ab".repeat(20).as_str()));
        assert_eq!((device.secondary_fingerprint, device.secondary_secret), (None, None));
        assert!(device.secure_access);
        assert_eq!(device.active_time_ms, Some(3));
    }
}

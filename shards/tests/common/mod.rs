//! Fixtures shared by the shard integration tests.

use shards::registry::records::{DeviceRecord, DeviceStatus};

/// A fresh SECRET device of project `p1`, product `meter`.
pub fn device(device_id: &str, record_id: u128) -> DeviceRecord {
    DeviceRecord {
        record_id,
        project_id: "p1".into(),
        device_id: device_id.into(),
        node_id: device_id.into(),
        product_id: "meter".into(),
        app_id: "default".into(),
        gateway_id: device_id.into(),
        device_name: None,
        description: None,
        auth_type: "SECRET".into(),
        secret: Some("secret-123".into()),
        fingerprint: None,
        secondary_fingerprint: None,
        secondary_secret: None,
        secure_access: false,
        timeout_s: 0,
        extension_info_json: None,
        initial_shadow_json: None,
        status: DeviceStatus::Inactive,
        create_time_ms: 0,
        connection_status_update_time_ms: None,
        active_time_ms: None,
    }
}

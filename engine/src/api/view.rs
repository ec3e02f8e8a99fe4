//! Registry records → the JSON shapes of spec §2.4. The summary type of list responses has no
//! `auth_info` field at all, so a secret cannot reach a list by accident.

use protocol::device::{AuthType, DeviceAuthInfo, DeviceResponse, DeviceStatus, DeviceSummary, NodeType};
use protocol::model::Product;
use protocol::time::{format_t1, format_t2};
use shards::registry::records::{self, DeviceRecord};

use crate::app::App;

pub fn device_response(app: &App, device: &DeviceRecord, include_secret: bool) -> DeviceResponse {
    let product = product_of(app, device);
    DeviceResponse {
        app_id: device.app_id.clone(),
        app_name: product.as_ref().map_or_else(|| device.app_id.clone(), |p| p.app_name.clone()),
        device_id: device.device_id.clone(),
        node_id: device.node_id.clone(),
        gateway_id: device.gateway_id.clone(),
        device_name: device.device_name.clone().unwrap_or_else(|| device.node_id.clone()),
        node_type: node_type(device),
        description: device.description.clone(),
        fw_version: None,
        sw_version: None,
        device_sdk_version: None,
        auth_info: DeviceAuthInfo {
            auth_type: if device.auth_type == AuthType::Certificates.as_str() {
                AuthType::Certificates
            } else {
                AuthType::Secret
            },
            secret: if include_secret { device.secret.clone() } else { None },
            secondary_secret: if include_secret { device.secondary_secret.clone() } else { None },
            fingerprint: device.fingerprint.clone(),
            secondary_fingerprint: device.secondary_fingerprint.clone(),
            secure_access: device.secure_access,
            timeout: device.timeout_s,
        },
        product_id: device.product_id.clone(),
        product_name: product.map(|p| p.name).unwrap_or_default(),
        status: status(device.status),
        create_time: format_t1(device.create_time_ms),
        connection_status_update_time: device.connection_status_update_time_ms.map(format_t2),
        active_time: device.active_time_ms.map(format_t2),
        tags: Vec::new(),
        extension_info: device
            .extension_info_json
            .as_deref()
            .and_then(|json| protocol::json::from_bytes(json.as_bytes()).ok()),
    }
}

pub fn device_summary(app: &App, device: &DeviceRecord) -> DeviceSummary {
    DeviceSummary::from(&device_response(app, device, false))
}

fn product_of(app: &App, device: &DeviceRecord) -> Option<Product> {
    let products = app.shard.products();
    let record = products.get(&device.project_id, &device.product_id)?;
    protocol::json::from_bytes(record.product_json.as_bytes()).ok()
}

fn node_type(device: &DeviceRecord) -> NodeType {
    if device.gateway_id == device.device_id {
        NodeType::Gateway
    } else {
        NodeType::Endpoint
    }
}

fn status(status: records::DeviceStatus) -> DeviceStatus {
    match status {
        records::DeviceStatus::Inactive => DeviceStatus::Inactive,
        records::DeviceStatus::Online => DeviceStatus::Online,
        records::DeviceStatus::Offline => DeviceStatus::Offline,
        records::DeviceStatus::Frozen => DeviceStatus::Frozen,
    }
}

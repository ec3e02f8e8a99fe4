//! Device response bodies (spec §2.4): [`DeviceResponse`] for ShowDevice / AddDevice /
//! UpdateDevice and [`DeviceSummary`] (IoTDA's `QueryDeviceSimplify`) for ListDevices.
//!
//! These are plain data; the engine fills them from its registry. Absent optional values are
//! omitted rather than written as `null`; `tags` is always written (`[]` when none).
//! [`DeviceSummary`] has no `auth_info` by construction: list responses never carry secrets.

use std::fmt;

use serde::{Deserialize, Serialize};
use simd_json::OwnedValue;

use crate::device::{redacted, AuthType};

/// `node_type`: whether the device talks to the platform itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum NodeType {
    /// A direct device or a gateway.
    Gateway,
    /// A sub-device behind a gateway.
    Endpoint,
    Unknown,
}

impl NodeType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "GATEWAY",
            Self::Endpoint => "ENDPOINT",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// `status` of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeviceStatus {
    /// Registered, never connected.
    Inactive,
    Online,
    Offline,
    /// NB-IoT only; never produced for MQTT devices.
    Abnormal,
    /// Frozen by the API. Some IoTDA pages spell it `FREEZED`; that spelling is read, not written.
    #[serde(alias = "FREEZED")]
    Frozen,
}

impl DeviceStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "INACTIVE",
            Self::Online => "ONLINE",
            Self::Offline => "OFFLINE",
            Self::Abnormal => "ABNORMAL",
            Self::Frozen => "FROZEN",
        }
    }
}

/// One device tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub tag_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_value: Option<String>,
}

/// `auth_info` of a device response.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthInfo {
    pub auth_type: AuthType,
    /// Only in Add and Show responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Only in Add and Show responses, and only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_fingerprint: Option<String>,
    pub secure_access: bool,
    /// Seconds; 0 = never expires.
    pub timeout: u32,
}

/// The body of ShowDevice, AddDevice and UpdateDevice responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceResponse {
    pub app_id: String,
    pub app_name: String,
    pub device_id: String,
    pub node_id: String,
    pub gateway_id: String,
    pub device_name: String,
    pub node_type: NodeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fw_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sw_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_sdk_version: Option<String>,
    pub auth_info: DeviceAuthInfo,
    pub product_id: String,
    pub product_name: String,
    pub status: DeviceStatus,
    /// T1, `20151212T121212Z`.
    pub create_time: String,
    /// T2, `2015-12-12T12:12:12.000Z`; absent until the device first connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_status_update_time: Option<String>,
    /// T2; absent until the device first connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_time: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_info: Option<OwnedValue>,
}

/// One device of a ListDevices response (`QueryDeviceSimplify`). Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSummary {
    pub app_id: String,
    pub app_name: String,
    pub device_id: String,
    pub node_id: String,
    pub gateway_id: String,
    pub device_name: String,
    pub node_type: NodeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fw_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sw_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_sdk_version: Option<String>,
    pub product_id: String,
    pub product_name: String,
    pub status: DeviceStatus,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl From<&DeviceResponse> for DeviceSummary {
    fn from(device: &DeviceResponse) -> Self {
        Self {
            app_id: device.app_id.clone(),
            app_name: device.app_name.clone(),
            device_id: device.device_id.clone(),
            node_id: device.node_id.clone(),
            gateway_id: device.gateway_id.clone(),
            device_name: device.device_name.clone(),
            node_type: device.node_type,
            description: device.description.clone(),
            fw_version: device.fw_version.clone(),
            sw_version: device.sw_version.clone(),
            device_sdk_version: device.device_sdk_version.clone(),
            product_id: device.product_id.clone(),
            product_name: device.product_name.clone(),
            status: device.status,
            tags: device.tags.clone(),
        }
    }
}

impl fmt::Debug for DeviceAuthInfo {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("DeviceAuthInfo")
            .field("auth_type", &self.auth_type)
            .field("secret", &redacted(&self.secret))
            .field("secondary_secret", &redacted(&self.secondary_secret))
            .field("fingerprint", &self.fingerprint)
            .field("secondary_fingerprint", &self.secondary_fingerprint)
            .field("secure_access", &self.secure_access)
            .field("timeout", &self.timeout)
            .finish()
    }
}

//! Device shadows on the home shard: property reports merge into `reported` and are logged;
//! ShowDeviceShadow reads them. A device that never reported still has the desired values it
//! was registered with.

use std::collections::HashMap;
use std::rc::Rc;

use protocol::shadow::{DeviceShadow, PropertyReport};

use super::records::{RegistryRecord, ShadowRecord};
use super::Shard;
use crate::messages::{Reply, ShardError};

/// Why a property report was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Invalid(#[from] protocol::error::ValidationError),
    #[error("the device does not exist")]
    UnknownDevice,
    #[error("{0}")]
    Storage(#[from] ShardError),
}

/// Parses the recovered shadow JSON; an unreadable one is logged and dropped.
pub(super) fn parse_shadows(shard: usize, shadows: HashMap<String, String>) -> HashMap<String, DeviceShadow> {
    shadows
        .into_iter()
        .filter_map(|(device_id, json)| match protocol::json::from_bytes::<DeviceShadow>(json.as_bytes()) {
            Ok(shadow) => Some((device_id, shadow)),
            Err(error) => {
                tracing::error!(shard, device_id, %error, "unreadable shadow in the log; dropped");
                None
            }
        })
        .collect()
}

impl Shard {
    /// The device's shadow: the stored one, or the desired values it was registered with.
    /// `None` once the device is gone from memory, even while its delete is being logged, so a
    /// late report cannot outlive the device.
    pub fn shadow_of(&self, device_id: &str) -> Option<DeviceShadow> {
        let devices = self.devices.borrow();
        let device = devices.get(device_id)?;
        if let Some(shadow) = self.shadows.borrow().get(device_id) {
            return Some(shadow.clone());
        }
        let created = protocol::time::format_t1(device.create_time_ms);
        Some(match &device.initial_shadow_json {
            Some(json) => DeviceShadow::with_initial_desired(json, &created),
            None => DeviceShadow::default(),
        })
    }

    /// ShowDeviceShadow on the home shard.
    pub(super) fn show_shadow(&self, project_id: &str, device_id: &str) -> Reply {
        if !self.has_device(project_id, device_id) {
            return Reply::Failed(ShardError::DeviceNotFound);
        }
        match self.shadow_of(device_id) {
            Some(shadow) => Reply::Shadow(Box::new(shadow)),
            None => Reply::Failed(ShardError::DeviceNotFound),
        }
    }

    /// Merges a property report into the device's shadow and waits until it is durable.
    pub async fn report_properties(
        self: &Rc<Self>,
        device_id: &str,
        report: PropertyReport,
    ) -> Result<(), ReportError> {
        let mut shadow = self.shadow_of(device_id).ok_or(ReportError::UnknownDevice)?;
        let received = protocol::time::format_t1(crate::now_unix_ms());
        shadow.apply_report(report, &received)?;
        let shadow_json = String::from_utf8(protocol::json::to_vec(&shadow)).expect("JSON is UTF-8");
        if shadow_json.len() > protocol::shadow::SHADOW_BYTES_MAX {
            let message = format!("the shadow would grow past {} bytes", protocol::shadow::SHADOW_BYTES_MAX);
            return Err(ReportError::Invalid(protocol::error::ValidationError::new("services", message)));
        }
        let previous = self.shadows.borrow_mut().insert(device_id.to_owned(), shadow.clone());
        let record = RegistryRecord::ShadowPut(ShadowRecord { device_id: device_id.to_owned(), shadow_json });
        let result = self.persist(record).await;
        if result.is_err() {
            let mut shadows = self.shadows.borrow_mut();
            if shadows.get(device_id) == Some(&shadow) {
                match previous {
                    Some(previous) => shadows.insert(device_id.to_owned(), previous),
                    None => shadows.remove(device_id),
                };
            }
        }
        Ok(result?)
    }

    /// The shadow records of a snapshot, at `revision`.
    pub(super) fn shadow_snapshot(&self, revision: u64) -> Vec<crate::log::LogRecord> {
        self.shadows
            .borrow()
            .iter()
            .map(|(device_id, shadow)| {
                let shadow_json = String::from_utf8(protocol::json::to_vec(shadow)).expect("JSON is UTF-8");
                RegistryRecord::ShadowPut(ShadowRecord { device_id: device_id.clone(), shadow_json })
                    .encode(revision)
            })
            .collect()
    }
}

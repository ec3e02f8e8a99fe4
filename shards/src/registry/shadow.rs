//! Device shadows on the home shard: property reports are checked against the device's
//! product model ([`protocol::model::report`]), what conforms merges into `reported` and is
//! logged; ShowDeviceShadow reads them. A device that never reported still has the desired
//! values it was registered with.
//!
//! Each dropped value is counted per reason ([`DroppedCounts`], `/metrics`
//! `ringiot_reported_properties_dropped_total{reason}`) and logged at debug with the device,
//! service, property and reason — per value, never per packet above debug.

use std::collections::HashMap;
use std::rc::Rc;

use protocol::model::report::{check_report, DropReason, DroppedValue};
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
    /// Every value was dropped (each is counted and logged): nothing was stored.
    #[error("no reported value conforms to the product model")]
    NothingAccepted,
    #[error("{0}")]
    Storage(#[from] ShardError),
}

/// Reported values dropped since start, indexed by [`DropReason::index`].
pub type DroppedCounts = [u64; DropReason::ALL.len()];

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

    /// Checks a property report against the device's product model, merges what conforms into
    /// the device's shadow and waits until it is durable. The values dropped are counted and
    /// logged here; a report with nothing left is [`ReportError::NothingAccepted`].
    pub async fn report_properties(
        self: &Rc<Self>,
        device_id: &str,
        report: PropertyReport,
    ) -> Result<(), ReportError> {
        report.validate()?;
        let mut shadow = self.shadow_of(device_id).ok_or(ReportError::UnknownDevice)?;
        let checked = check_report(self.model_of(device_id).as_deref(), report);
        self.count_dropped(device_id, &checked.dropped);
        if checked.accepted.services.is_empty() {
            return Err(ReportError::NothingAccepted);
        }
        let received = protocol::time::format_t1(crate::now_unix_ms());
        shadow.apply_report(checked.accepted, &received)?;
        // Desired values the device now reports are met (`crate::desired`).
        shadow.clear_met_desired();
        match self.store_shadow(device_id, shadow).await {
            Ok(()) => {
                self.push_desired(device_id);
                Ok(())
            }
            Err(ShardError::Invalid(error)) => Err(ReportError::Invalid(error)),
            Err(error) => Err(ReportError::Storage(error)),
        }
    }

    /// Puts `shadow` in memory and in the log; an error leaves memory as it was (unless a later
    /// change replaced it already). A shadow larger than `SHADOW_BYTES_MAX` is refused.
    pub(crate) async fn store_shadow(
        self: &Rc<Self>,
        device_id: &str,
        shadow: DeviceShadow,
    ) -> Result<(), ShardError> {
        let shadow_json = String::from_utf8(protocol::json::to_vec(&shadow)).expect("JSON is UTF-8");
        if shadow_json.len() > protocol::shadow::SHADOW_BYTES_MAX {
            let message = format!("the shadow would grow past {} bytes", protocol::shadow::SHADOW_BYTES_MAX);
            return Err(ShardError::Invalid(protocol::error::ValidationError::new("services", message)));
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
        result
    }

    /// The part of `report` that conforms to the device's product model now, for the
    /// `device.property:report` notification of a report already applied (nothing is counted).
    pub(crate) fn accepted_part(&self, device_id: &str, report: PropertyReport) -> PropertyReport {
        check_report(self.model_of(device_id).as_deref(), report).accepted
    }

    /// Reported values dropped since start, per reason.
    pub fn dropped_counts(&self) -> DroppedCounts {
        self.reported_dropped.get()
    }

    /// The product model of a device of this shard (`None`: no device, or no model here).
    fn model_of(&self, device_id: &str) -> Option<Rc<protocol::model::Product>> {
        let devices = self.devices.borrow();
        let device = devices.get(device_id)?;
        self.products.borrow().model(&device.project_id, &device.product_id)
    }

    fn count_dropped(&self, device_id: &str, dropped: &[DroppedValue]) {
        if dropped.is_empty() {
            return;
        }
        let mut counts = self.reported_dropped.get();
        for value in dropped {
            counts[value.reason.index()] += 1;
            // Never the value, nor `detail` (which may quote it: a device may put a secret in
            // the wrong property); names a device chose are cut short.
            tracing::debug!(
                shard = self.id(),
                device_id,
                service_id = short(&value.service_id),
                property = short(&value.property_name),
                reason = value.reason.as_str(),
                "reported property dropped"
            );
        }
        self.reported_dropped.set(counts);
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

/// At most 64 bytes of a name a device chose, for the log.
fn short(name: &str) -> &str {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

//! Desired properties delivered by the shadow (spec §2.9, §7.3): UpdateDeviceShadowDesiredData
//! on the home shard, and sending a device the desired values that differ from what it
//! reported.
//!
//! Invariants:
//! - The shadow (desired and reported) is durable before UpdateDeviceShadowDesiredData
//!   answers; desired values are checked like a property set (each property exists in the
//!   product model, is writable, and the value fits), so every desired value is one the
//!   device can be sent.
//! - A device is sent its desired differences with the property-set flow — a real call, with
//!   its waiter, deadline and metrics (`device_calls_total{kind="properties_set"}`) — when it
//!   logs in, after each of its property reports, and when its desired values change while
//!   it is online. Its answer is awaited; the values are cleared only when a report shows
//!   them ([`protocol::shadow::DeviceShadow::clear_met_desired`]).
//! - Unless the desired values change, a device is sent them at most once per
//!   [`RESEND_INTERVAL`] (5 minutes), answered or not: the spec's "no resend for 5 minutes
//!   without an answer", and an answered set is followed by the device's report anyway.
//!   When they were last sent is soft state: after a restart they are sent again at login.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use protocol::shadow::{DesiredUpdate, DeviceShadow};

use crate::calls::{CallBody, DeviceCall};
use crate::messages::{Reply, ShardError};
use crate::registry::Shard;

/// The least time between two sends of the same desired values to a device.
pub const RESEND_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// When each device of the shard was last sent its desired values.
#[derive(Debug, Default)]
pub struct DesiredState {
    sent: RefCell<HashMap<String, Instant>>,
}

impl Shard {
    /// UpdateDeviceShadowDesiredData on the device's home shard.
    pub(crate) async fn update_desired(
        self: &Rc<Self>,
        project_id: &str,
        device_id: &str,
        update: DesiredUpdate,
    ) -> Reply {
        let Some((product_id, product)) = self.model_of_device(project_id, device_id) else {
            return Reply::Failed(ShardError::DeviceNotFound);
        };
        if let Err(error) = update.validate() {
            return Reply::Failed(ShardError::Invalid(error));
        }
        let to_set = update.values_to_set();
        if !to_set.is_empty() {
            let checked = match product.as_deref() {
                Some(product) => protocol::model::check::check_property_set(product, &to_set),
                None => Err(protocol::error::ValidationError::new(
                    "shadow",
                    format!("the device's product '{product_id}' has no model on this shard"),
                )),
            };
            if let Err(error) = checked {
                // The model check names `services[i]`; the body says `shadow[i]`.
                let field =
                    error.field.replacen("services[", "shadow[", 1).replacen(".properties", ".desired", 1);
                return Reply::Failed(ShardError::Invalid(protocol::error::ValidationError::new(
                    field,
                    error.message,
                )));
            }
        }
        let Some(mut shadow) = self.shadow_of(device_id) else {
            return Reply::Failed(ShardError::DeviceNotFound);
        };
        let now = protocol::time::format_t1(crate::now_unix_ms());
        if let Err(error) = shadow.apply_desired(update, &now) {
            return Reply::Failed(ShardError::Invalid(error));
        }
        if let Err(error) = self.store_shadow(device_id, shadow.clone()).await {
            return Reply::Failed(error);
        }
        // New desired values go out at once, whenever the last ones were sent.
        self.desired.sent.borrow_mut().remove(device_id);
        self.push_desired(device_id);
        Reply::Shadow(Box::new(shadow))
    }

    /// Sends the device its desired values that differ from the reported ones, if it is online
    /// and was not sent them within [`RESEND_INTERVAL`]. Never waits: the call runs on a task
    /// of its own.
    pub fn push_desired(self: &Rc<Self>, device_id: &str) {
        // Online: its own session, or — a sub-device — reported ONLINE by its gateway (the call
        // then goes through the gateway, `crate::calls::gateway`).
        let reachable = self.session_link(device_id).is_some()
            || self.device_for_login(device_id).is_some_and(|device| {
                device.gateway_id != device.device_id
                    && device.status == crate::registry::records::DeviceStatus::Online
            });
        if !reachable {
            return;
        }
        if self.desired.sent.borrow().get(device_id).is_some_and(|at| at.elapsed() < RESEND_INTERVAL) {
            return;
        }
        let Some(project_id) = self.device_for_login(device_id).map(|d| d.project_id) else { return };
        let differences = self.shadow_of(device_id).map(|shadow: DeviceShadow| shadow.desired_differences());
        // Only what the product model allows now (a property may have stopped being writable
        // since it was desired): one such value must not block the others for ever.
        let model = self.model_of_device(&project_id, device_id).and_then(|(_, product)| product);
        let differences = differences.map(|differences| allowed(model.as_deref(), differences));
        let Some(differences) = differences.filter(|d| !d.is_empty()) else { return };
        self.desired.sent.borrow_mut().insert(device_id.to_owned(), Instant::now());
        let call = DeviceCall {
            project_id,
            device_id: device_id.to_owned(),
            body: CallBody::PropertiesSet { services: differences },
            timeout_ms: self.device_access_config().device_call_timeout.as_millis() as u64,
        };
        let shard = self.clone();
        glommio::spawn_local(async move {
            let device_id = call.device_id.clone();
            let outcome = match shard.device_call(call).await {
                Reply::Answered { .. } => "answered",
                Reply::TimedOut { .. } => "timed out",
                _ => "not delivered",
            };
            tracing::debug!(shard = shard.id(), device_id, outcome, "desired properties sent");
        })
        .detach();
    }

    /// Forgets when a device was sent its desired values (it was deleted).
    pub(crate) fn forget_desired(&self, device_id: &str) {
        self.desired.sent.borrow_mut().remove(device_id);
    }
}

/// The desired values the product model allows to be set, per service.
fn allowed(
    product: Option<&protocol::model::Product>,
    differences: Vec<(String, simd_json::OwnedValue)>,
) -> Vec<(String, simd_json::OwnedValue)> {
    use simd_json::prelude::ValueAsObject;
    let Some(product) = product else { return Vec::new() };
    differences
        .into_iter()
        .filter_map(|(service_id, properties)| {
            let kept: simd_json::owned::Object = properties
                .as_object()?
                .iter()
                .filter(|(name, value)| {
                    let one = simd_json::owned::Object::from_iter([((*name).clone(), (*value).clone())]);
                    let single = [(service_id.clone(), simd_json::OwnedValue::Object(Box::new(one)))];
                    protocol::model::check::check_property_set(product, &single).is_ok()
                })
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            (!kept.is_empty()).then(|| (service_id, simd_json::OwnedValue::Object(Box::new(kept))))
        })
        .collect()
}

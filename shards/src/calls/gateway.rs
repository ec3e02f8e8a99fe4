//! A sub-device's synchronous calls, through its gateway (spec §7.1).
//!
//! A sub-device never connects: the platform publishes its commands and property calls on the
//! **gateway's** topics with `"object_device_id": "{sub_device_id}"`, and the gateway answers
//! on its own response topic with the same request id.
//!
//! How a call finds the gateway's session when the two live on different shards: the
//! sub-device's home shard checks the call (the sub-device exists in the caller's project, the
//! call fits the sub-device's product model), then hands it to the gateway's home shard in one
//! mesh request ([`crate::messages::Request::GatewayCall`]). That shard owns the gateway's
//! session, so the waiter lives there — the answer arrives on the gateway's connection, read
//! by that shard — and it publishes, waits and replies with the answer, the timeout or the
//! refusal. The hop is one mesh round trip, none when both live on one shard. The call is
//! counted (`device_calls_total`, round-trip histogram) on the gateway's shard, where it waits.
//!
//! Decisions where the spec is silent:
//! - The gateway must be online (else 403 IOTDA.014016, as for any offline device); the
//!   sub-device's own reported status is not required.
//! - Deleting a sub-device does not fail a call already waiting at its gateway: that call ends
//!   with the gateway's answer or its deadline.

use std::rc::Rc;

use protocol::routing::home_shard;

use super::metrics::Outcome;
use super::DeviceCall;
use crate::messages::{Reply, Request};
use crate::registry::Shard;

/// A sub-device's call, on its way to its gateway's home shard.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayCall {
    pub gateway_id: String,
    /// The sub-device's call, checked on its home shard.
    pub call: DeviceCall,
}

impl Shard {
    /// The gateway of a sub-device of this shard; `None` for a direct device.
    pub(crate) fn gateway_of(&self, device_id: &str) -> Option<String> {
        self.device_for_login(device_id)
            .filter(|device| device.gateway_id != device.device_id)
            .map(|device| device.gateway_id)
    }

    /// Hands a checked sub-device call to its gateway's home shard (or runs it here).
    pub(super) async fn call_through_gateway(self: &Rc<Self>, gateway_id: String, call: DeviceCall) -> Reply {
        let home = home_shard(&gateway_id, self.shard_count());
        let routed = GatewayCall { gateway_id, call };
        if home == self.id() {
            return self.gateway_call(routed).await;
        }
        // Boxed: `call` runs requests that may be device calls, which may come here.
        Box::pin(self.call(home, Request::GatewayCall(Box::new(routed)))).await
    }

    /// On the gateway's home shard: publishes the sub-device's call on the gateway's
    /// connection and waits for the gateway's answer.
    pub(crate) async fn gateway_call(self: &Rc<Self>, routed: GatewayCall) -> Reply {
        let GatewayCall { gateway_id, call } = routed;
        let kind = call.body.kind();
        // The gateway must be of the sub-device's project (an orphan whose gateway id was
        // registered again elsewhere must not reach another project's device).
        if self.device_for_login(&gateway_id).is_none_or(|gateway| gateway.project_id != call.project_id) {
            self.calls.count(kind, Outcome::Offline);
            return Reply::Failed(crate::messages::ShardError::DeviceOffline);
        }
        match self.publish_call(&gateway_id, Some(&call.device_id), &call.body) {
            Ok(started) => self.await_call(kind, started, call.timeout_ms, &call.device_id).await,
            Err((outcome, error)) => {
                self.calls.count(kind, outcome);
                Reply::Failed(error)
            }
        }
    }
}

//! Messages to a sub-device (spec §7.1): they go out on its **gateway's**
//! `.../sys/messages/down` with `"object_device_id": "{sub_device_id}"` added to the standard
//! message body, once the gateway has reported the sub-device ONLINE.
//!
//! The message lives on the sub-device's home shard like any other (history, TTL, statuses,
//! notifications); the publish is done by the gateway's home shard, which owns the gateway's
//! session (`crate::gateway::GatewayRequest::Publish`, one mesh hop when the two differ).
//!
//! Decisions where the spec is silent:
//! - Delivery is **at most once** whatever QoS the gateway subscribed with: DELIVERED is made
//!   durable before the publish (as for QoS 0 to a direct device), and a gateway's PUBACK is not
//!   tracked per sub-device message. If the gateway's session is found gone, the message goes
//!   back to PENDING.
//! - A cached message waits until the gateway reports the sub-device ONLINE (status event);
//!   the sub-device's OFFLINE, or its gateway going offline, holds new ones in the cache.
//! - Only the standard format on the system topic can carry `object_device_id`: a message for
//!   a sub-device with `topic` / `topic_full_name`, or a raw or base64 payload, is refused (400).

use std::rc::Rc;

use bytes::Bytes;
use protocol::mqtt::topic;

use super::{finished, json_string, OFFLINE_CODE};
use crate::gateway::GatewayRequest;
use crate::messages::{Reply, Request, ShardError};
use crate::registry::records::{DeviceStatus, MessageRecord, MessageStatus};
use crate::registry::Shard;

impl Shard {
    /// CreateMessage for a sub-device (after the checks common to every message).
    pub(super) async fn create_sub_device_message(
        self: &Rc<Self>,
        gateway_id: String,
        pending: MessageRecord,
    ) -> Reply {
        let standard = pending.topic.is_none()
            && pending.topic_full_name.is_none()
            && pending.encoding != "base64"
            && pending.payload_format != "raw";
        if !standard {
            return Reply::Failed(ShardError::Invalid(protocol::error::ValidationError::new(
                "message",
                "a sub-device's messages go through its gateway's messages/down topic: standard format only \
                 (no topic, topic_full_name, raw or base64 payload)",
            )));
        }
        if !self.reported_online(&pending.device_id) {
            let record = if pending.ttl_minutes == 0 {
                let text = "the sub-device is offline and the message has no cache time (ttl 0)".to_owned();
                finished(&pending, MessageStatus::Failed, Some((OFFLINE_CODE, text)))
            } else {
                pending
            };
            return self.accept(record).await;
        }
        if self.mailbox.delivering.borrow().contains_key(&pending.device_id) {
            // Its cached messages are still going out: this one queues behind them.
            let reply = self.accept(pending.clone()).await;
            self.deliver_pending(&pending.device_id);
            return reply;
        }
        let delivered = finished(&pending, MessageStatus::Delivered, None);
        if let failed @ Reply::Failed(_) = self.accept(delivered.clone()).await {
            return failed;
        }
        if !self.publish_via_gateway(&gateway_id, &pending).await {
            self.change_message(&delivered, pending.clone()).await;
        }
        self.current_message(&pending)
    }

    /// The sub-device's cached messages, in order, while its gateway takes them.
    pub(super) async fn deliver_pending_via_gateway(self: &Rc<Self>, gateway_id: &str, device_id: &str) {
        if !self.reported_online(device_id) {
            return;
        }
        let pending = self.mailbox.history.borrow().pending(device_id);
        for message in pending {
            let delivered = finished(&message, MessageStatus::Delivered, None);
            if !self.change_message(&message, delivered.clone()).await {
                continue;
            }
            if !self.publish_via_gateway(gateway_id, &message).await {
                self.change_message(&delivered, message).await;
                return;
            }
        }
    }

    /// Asks the gateway's home shard to publish the message on the gateway's connection;
    /// `false` if the gateway is not connected.
    async fn publish_via_gateway(self: &Rc<Self>, gateway_id: &str, message: &MessageRecord) -> bool {
        #[derive(serde::Serialize)]
        struct Standard<'a> {
            object_device_id: &'a str,
            name: Option<&'a str>,
            id: &'a str,
            content: &'a str,
        }
        let text = json_string(&message.message_json);
        let content = text.as_deref().unwrap_or(&message.message_json);
        let body = Standard {
            object_device_id: &message.device_id,
            name: message.name.as_deref(),
            id: &message.message_id,
            content,
        };
        let request = GatewayRequest::Publish {
            gateway_id: gateway_id.to_owned(),
            topic_name: topic::messages_down_topic(gateway_id),
            payload: Bytes::from(protocol::json::to_vec(&body)),
        };
        let home = protocol::routing::home_shard(gateway_id, self.shard_count());
        let reply = Box::pin(self.call(home, Request::Gateway(Box::new(request)))).await;
        matches!(reply, Reply::Done)
    }

    /// The sub-device was reported ONLINE by its gateway.
    fn reported_online(&self, device_id: &str) -> bool {
        self.device_for_login(device_id).is_some_and(|device| device.status == DeviceStatus::Online)
    }
}

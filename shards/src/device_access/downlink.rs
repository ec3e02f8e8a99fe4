//! Downlink publishes of one session, as a plain state machine: which QoS a topic is delivered
//! at, packet ids, and the bounded QoS 1 in-flight window.
//!
//! - QoS: the highest QoS granted by an explicit subscription whose filter matches the topic;
//!   else QoS 0 if the topic is one of the device's own downlink system topics (the implicit
//!   subscription, spec §1.3); else the device is not subscribed and nothing is sent.
//! - At most [`INFLIGHT_MAX`] QoS 1 publishes wait for their PUBACK (the official Python SDK's
//!   window is 20). Further ones wait in a queue of [`PENDING_MAX`] and go out, in order, as
//!   PUBACKs free the window; beyond that they are refused and counted, never buffered without
//!   bound. Redelivery after a reconnect belongs to the message store (spec §1.6), not here.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use protocol::mqtt::codec::Publish;
use protocol::mqtt::topic;

pub const INFLIGHT_MAX: usize = 20;
pub const PENDING_MAX: usize = 100;
/// Payload bytes of QoS 1 publishes held for one session (in flight and queued).
pub const HELD_BYTES_MAX: usize = 1 << 20;

/// The QoS `topic` is delivered at, or `None` if the device is not subscribed to it.
pub fn delivery_qos(subscriptions: &[(String, u8)], device_id: &str, topic_name: &str) -> Option<u8> {
    let explicit = subscriptions
        .iter()
        .filter(|(filter, _)| topic::filter_matches(filter, topic_name))
        .map(|(_, q)| *q)
        .max();
    explicit.or_else(|| topic::is_implicit_system_topic(device_id, topic_name).then_some(0))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownlinkError {
    #[error("the device is not subscribed to {0}")]
    NotSubscribed(String),
    #[error("the device's downlink is full ({INFLIGHT_MAX} in flight, {PENDING_MAX} or {HELD_BYTES_MAX} bytes queued)")]
    Full,
}

#[derive(Debug, Default)]
pub struct Downlink {
    inflight: BTreeMap<u16, Publish>,
    pending: VecDeque<Publish>,
    last_packet_id: u16,
    /// Payload bytes in `inflight` and `pending`.
    held_bytes: usize,
}

impl Downlink {
    /// Prepares a publish at `qos`: `Ok(Some(publish))` to write now, `Ok(None)` when it waits
    /// for room in the in-flight window.
    pub fn publish(
        &mut self,
        topic_name: String,
        payload: Bytes,
        qos: u8,
    ) -> Result<Option<Publish>, DownlinkError> {
        let publish =
            Publish { topic: topic_name, payload, qos: qos.min(1), packet_id: 0, dup: false, retain: false };
        if publish.qos == 0 {
            return Ok(Some(publish));
        }
        if self.inflight.len() < INFLIGHT_MAX && self.pending.is_empty() {
            if self.held_bytes + publish.payload.len() > HELD_BYTES_MAX {
                return Err(DownlinkError::Full);
            }
            self.held_bytes += publish.payload.len();
            return Ok(Some(self.send_qos1(publish)));
        }
        if self.pending.len() >= PENDING_MAX || self.held_bytes + publish.payload.len() > HELD_BYTES_MAX {
            return Err(DownlinkError::Full);
        }
        self.held_bytes += publish.payload.len();
        self.pending.push_back(publish);
        Ok(None)
    }

    /// A PUBACK arrived: frees its slot and returns the next queued publish to write, if any.
    /// An ack for an unknown packet id is ignored (`None`).
    pub fn acknowledge(&mut self, packet_id: u16) -> Option<Publish> {
        let acknowledged = self.inflight.remove(&packet_id)?;
        self.held_bytes -= acknowledged.payload.len();
        let next = self.pending.pop_front()?;
        Some(self.send_qos1(next))
    }

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn send_qos1(&mut self, mut publish: Publish) -> Publish {
        publish.packet_id = self.next_packet_id();
        self.inflight.insert(publish.packet_id, publish.clone());
        publish
    }

    /// The next packet id not in flight: 1..=65535, wrapping, never 0 [MQTT-2.2.1-3].
    fn next_packet_id(&mut self) -> u16 {
        loop {
            self.last_packet_id = self.last_packet_id.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&self.last_packet_id) {
                return self.last_packet_id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(downlink: &mut Downlink, n: usize) -> Option<Publish> {
        downlink.publish(format!("t/{n}"), Bytes::from_static(b"x"), 1).unwrap()
    }

    #[test]
    fn the_window_holds_twenty_then_queues_in_order_then_refuses() {
        let mut downlink = Downlink::default();
        let sent: Vec<u16> = (0..INFLIGHT_MAX).map(|n| send(&mut downlink, n).unwrap().packet_id).collect();
        assert_eq!(sent, (1..=INFLIGHT_MAX as u16).collect::<Vec<_>>());
        for n in 0..PENDING_MAX {
            assert!(send(&mut downlink, 100 + n).is_none(), "queued");
        }
        assert_eq!(downlink.publish("t/x".into(), Bytes::new(), 1), Err(DownlinkError::Full));
        let next = downlink.acknowledge(5).expect("a queued publish goes out");
        assert_eq!(next.topic, "t/100", "in order");
        assert_eq!(downlink.inflight(), INFLIGHT_MAX);
        assert_eq!(downlink.pending(), PENDING_MAX - 1);
        assert!(downlink.acknowledge(5).is_none(), "a duplicate ack changes nothing");
        assert!(downlink.acknowledge(999).is_none());
    }

    #[test]
    fn qos_0_never_occupies_the_window_and_ids_skip_zero_and_in_flight_ones() {
        let mut downlink = Downlink { last_packet_id: u16::MAX - 1, ..Default::default() };
        let qos0 = downlink.publish("t".into(), Bytes::new(), 0).unwrap().unwrap();
        assert_eq!((qos0.qos, qos0.packet_id), (0, 0));
        assert_eq!(send(&mut downlink, 1).unwrap().packet_id, u16::MAX);
        assert_eq!(send(&mut downlink, 2).unwrap().packet_id, 1, "wraps past 0");
        assert_eq!(downlink.inflight(), 2);
    }

    #[test]
    fn held_bytes_are_bounded_and_given_back_on_ack() {
        let mut downlink = Downlink::default();
        let big = Bytes::from(vec![0u8; HELD_BYTES_MAX / 2]);
        let first = downlink.publish("a".into(), big.clone(), 1).unwrap().unwrap();
        assert!(downlink.publish("b".into(), big.clone(), 1).unwrap().is_some());
        assert_eq!(downlink.publish("c".into(), Bytes::from_static(b"x"), 1), Err(DownlinkError::Full));
        assert!(downlink.acknowledge(first.packet_id).is_none());
        assert!(downlink.publish("c".into(), Bytes::from_static(b"x"), 1).unwrap().is_some());
    }

    #[test]
    fn explicit_subscriptions_beat_the_implicit_qos_0_one() {
        let system = "$oc/devices/d1/sys/shadow/get/response/request_id=7";
        assert_eq!(delivery_qos(&[], "d1", system), Some(0), "implicit");
        let subscribed = [("$oc/devices/d1/sys/shadow/get/response/#".to_string(), 1)];
        assert_eq!(delivery_qos(&subscribed, "d1", system), Some(1));
        assert_eq!(
            delivery_qos(&[], "d1", "$oc/devices/d1/user/custom"),
            None,
            "custom topics need a SUBSCRIBE"
        );
        assert_eq!(delivery_qos(&[], "d1", "$oc/devices/d2/sys/messages/down"), None);
    }
}

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
//! - A QoS 1 publish may carry a tag (a downlink message's id) that its PUBACK hands back, so
//!   the message store learns which message was acknowledged.
//! - An unacknowledged QoS 1 publish is sent again with DUP every [`RESEND_INTERVAL_MS`], at
//!   most [`RESENDS_MAX`] times (spec §1.6); after that it waits for its PUBACK or the end of
//!   the session.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use protocol::mqtt::codec::Publish;
use protocol::mqtt::topic;

pub const INFLIGHT_MAX: usize = 20;
pub const PENDING_MAX: usize = 100;
/// Payload bytes of QoS 1 publishes held for one session (in flight and queued).
pub const HELD_BYTES_MAX: usize = 1 << 20;
/// Time before an unacknowledged QoS 1 publish is sent again (spec §1.6: every 2 s).
pub const RESEND_INTERVAL_MS: u64 = 2_000;
/// Resends of one unacknowledged publish (spec §1.6: 3 times).
pub const RESENDS_MAX: u8 = 3;

/// The QoS `topic` is delivered at, or `None` if the device is not subscribed to it.
pub fn delivery_qos(subscriptions: &[(String, u8)], device_id: &str, topic_name: &str) -> Option<u8> {
    let explicit = subscriptions
        .iter()
        .filter(|(filter, _)| topic::filter_matches(filter, topic_name))
        .map(|(_, q)| *q)
        .max();
    explicit.or_else(|| topic::is_implicit_system_topic(device_id, topic_name).then_some(0))
}

/// What a PUBACK released.
#[derive(Debug, Default, PartialEq)]
pub struct Acknowledged {
    /// The tag of the acknowledged publish.
    pub tag: Option<String>,
    /// A queued publish that now goes out.
    pub next: Option<Publish>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownlinkError {
    #[error("the device is not subscribed to {0}")]
    NotSubscribed(String),
    #[error("the device's downlink is full ({INFLIGHT_MAX} in flight, {PENDING_MAX} or {HELD_BYTES_MAX} bytes queued)")]
    Full,
}

/// A QoS 1 publish waiting for its PUBACK.
#[derive(Debug)]
struct InFlight {
    publish: Publish,
    tag: Option<String>,
    /// When it was (last) written, in the caller's clock (ms).
    sent_ms: u64,
    resends: u8,
}

#[derive(Debug, Default)]
pub struct Downlink {
    inflight: BTreeMap<u16, InFlight>,
    pending: VecDeque<(Publish, Option<String>)>,
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
        self.publish_tagged(topic_name, payload, qos, None, 0, true)
    }

    /// [`Downlink::publish`] with a tag that the PUBACK hands back, at `now_ms`. With
    /// `may_wait` false a QoS 1 publish that would have to wait for room in the window is
    /// refused instead (a synchronous call must not go out after its caller gave up).
    pub fn publish_tagged(
        &mut self,
        topic_name: String,
        payload: Bytes,
        qos: u8,
        tag: Option<String>,
        now_ms: u64,
        may_wait: bool,
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
            return Ok(Some(self.send_qos1(publish, tag, now_ms)));
        }
        if !may_wait
            || self.pending.len() >= PENDING_MAX
            || self.held_bytes + publish.payload.len() > HELD_BYTES_MAX
        {
            return Err(DownlinkError::Full);
        }
        self.held_bytes += publish.payload.len();
        self.pending.push_back((publish, tag));
        Ok(None)
    }

    /// A PUBACK arrived: frees its slot. Returns the acknowledged publish's tag and the next
    /// queued publish to write, if any. An ack for an unknown packet id changes nothing.
    pub fn acknowledge(&mut self, packet_id: u16, now_ms: u64) -> Acknowledged {
        let Some(acknowledged) = self.inflight.remove(&packet_id) else { return Acknowledged::default() };
        self.held_bytes -= acknowledged.publish.payload.len();
        let next = self.pending.pop_front().map(|(next, tag)| self.send_qos1(next, tag, now_ms));
        Acknowledged { tag: acknowledged.tag, next }
    }

    /// The unacknowledged publishes due for a resend at `now_ms`, marked DUP.
    pub fn due_resends(&mut self, now_ms: u64) -> Vec<Publish> {
        let mut due = Vec::new();
        for entry in self.inflight.values_mut() {
            if entry.resends < RESENDS_MAX && now_ms >= entry.sent_ms + RESEND_INTERVAL_MS {
                entry.resends += 1;
                entry.sent_ms = now_ms;
                entry.publish.dup = true;
                due.push(entry.publish.clone());
            }
        }
        due
    }

    /// Whether some publish may still be resent (the caller keeps ticking while it is).
    pub fn has_resends_left(&self) -> bool {
        self.inflight.values().any(|entry| entry.resends < RESENDS_MAX)
    }

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn send_qos1(&mut self, mut publish: Publish, tag: Option<String>, now_ms: u64) -> Publish {
        publish.packet_id = self.next_packet_id();
        self.inflight.insert(
            publish.packet_id,
            InFlight { publish: publish.clone(), tag, sent_ms: now_ms, resends: 0 },
        );
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
        let mut fresh = Downlink::default();
        for n in 0..INFLIGHT_MAX {
            send(&mut fresh, n);
        }
        assert_eq!(
            fresh.publish_tagged("t/call".into(), Bytes::new(), 1, None, 0, false),
            Err(DownlinkError::Full),
            "a call that cannot go out now is refused, not queued"
        );
        let next = downlink.acknowledge(5, 0).next.expect("a queued publish goes out");
        assert_eq!(next.topic, "t/100", "in order");
        assert_eq!(downlink.inflight(), INFLIGHT_MAX);
        assert_eq!(downlink.pending(), PENDING_MAX - 1);
        assert_eq!(downlink.acknowledge(5, 0), Acknowledged::default(), "a duplicate ack changes nothing");
        assert_eq!(downlink.acknowledge(999, 0), Acknowledged::default());
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
        assert!(downlink.acknowledge(first.packet_id, 0).next.is_none());
        assert!(downlink.publish("c".into(), Bytes::from_static(b"x"), 1).unwrap().is_some());
    }

    #[test]
    fn tags_come_back_with_their_ack_and_unacked_publishes_are_resent_three_times() {
        let mut downlink = Downlink::default();
        let first = downlink
            .publish_tagged("a".into(), Bytes::new(), 1, Some("m1".into()), 1_000, true)
            .unwrap()
            .unwrap();
        assert!(downlink.due_resends(2_999).is_empty(), "not before 2 s");
        let resent = downlink.due_resends(3_000);
        assert_eq!(resent.len(), 1);
        assert!(resent[0].dup && resent[0].packet_id == first.packet_id, "same packet id, DUP set");
        assert!(downlink.due_resends(4_000).is_empty());
        assert_eq!(downlink.due_resends(5_000).len(), 1);
        assert_eq!(downlink.due_resends(7_000).len(), 1);
        assert!(!downlink.has_resends_left());
        assert!(downlink.due_resends(100_000).is_empty(), "three resends at most");
        let acked = downlink.acknowledge(first.packet_id, 0);
        assert_eq!(acked.tag.as_deref(), Some("m1"));
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

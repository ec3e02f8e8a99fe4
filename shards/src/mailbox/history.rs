//! The downlink messages of the devices of one shard, as plain data: a history of at most
//! [`HISTORY_MAX`] messages per device in acceptance order, and a deadline index of the pending
//! ones for TTL expiry. No I/O and no clock: every time is a parameter, so the rules (the
//! 20-entry ring, TTL, delivery order) are tested with a fake clock.
//!
//! Invariants:
//! - A device's history is sorted by `seq` and holds at most [`HISTORY_MAX`] messages.
//! - `deadlines` holds exactly the pending messages with a TTL, keyed by their expiry time.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::registry::records::{MessageRecord, MessageStatus};

/// Messages kept per device (spec §2.7): the 21st replaces the oldest.
pub const HISTORY_MAX: usize = 20;

#[derive(Debug, Default)]
pub struct History {
    by_device: HashMap<String, VecDeque<MessageRecord>>,
    /// `(expires_ms, device_id, message_id)` of every pending message.
    deadlines: BTreeSet<(i64, String, String)>,
    last_seq: u64,
}

/// How long a message with `ttl` 0 (not cached) may wait for its QoS 1 PUBACK: the resend
/// window of spec §1.6 (3 resends 2 s apart) with a margin.
pub const NO_CACHE_ACK_WINDOW_MS: i64 = 10_000;

/// When a pending message expires.
pub fn expires_ms(message: &MessageRecord) -> i64 {
    let ttl_ms = i64::from(message.ttl_minutes) * 60_000;
    message.created_ms.saturating_add(ttl_ms.max(NO_CACHE_ACK_WINDOW_MS))
}

impl History {
    /// The history as recovered from the log.
    pub fn recovered(messages: Vec<MessageRecord>) -> History {
        let mut history = History::default();
        let mut messages = messages;
        messages.sort_by_key(|m| m.seq);
        for message in messages {
            history.last_seq = history.last_seq.max(message.seq);
            // A recovered history is never over the bound, but eviction keeps it so anyway.
            history.insert(message);
        }
        history
    }

    /// The next acceptance number.
    pub fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    pub fn get(&self, device_id: &str, message_id: &str) -> Option<&MessageRecord> {
        self.by_device.get(device_id)?.iter().find(|m| m.message_id == message_id)
    }

    /// The device's messages, oldest first.
    pub fn list(&self, device_id: &str) -> Vec<MessageRecord> {
        self.by_device.get(device_id).map(|m| m.iter().cloned().collect()).unwrap_or_default()
    }

    /// Adds a newly accepted message; returns the message it evicted, if the device already had
    /// [`HISTORY_MAX`].
    pub fn insert(&mut self, message: MessageRecord) -> Option<MessageRecord> {
        self.index(&message);
        let messages = self.by_device.entry(message.device_id.clone()).or_default();
        messages.push_back(message);
        if messages.len() <= HISTORY_MAX {
            return None;
        }
        let evicted = messages.pop_front()?;
        self.unindex(&evicted);
        Some(evicted)
    }

    /// Replaces a message with its new state (same device and id); `false` if it is not here
    /// any more (evicted meanwhile).
    pub fn update(&mut self, message: MessageRecord) -> bool {
        let Some(messages) = self.by_device.get_mut(&message.device_id) else { return false };
        let Some(slot) = messages.iter_mut().find(|m| m.message_id == message.message_id) else {
            return false;
        };
        let old = std::mem::replace(slot, message.clone());
        self.unindex(&old);
        self.index(&message);
        true
    }

    /// Removes one message (its acceptance could not be made durable).
    pub fn remove(&mut self, device_id: &str, message_id: &str) -> Option<MessageRecord> {
        let messages = self.by_device.get_mut(device_id)?;
        let index = messages.iter().position(|m| m.message_id == message_id)?;
        let removed = messages.remove(index)?;
        if messages.is_empty() {
            self.by_device.remove(device_id);
        }
        self.unindex(&removed);
        Some(removed)
    }

    /// Pending messages of all devices.
    pub fn pending_count(&self) -> usize {
        self.deadlines.len()
    }

    /// Pending messages of one device.
    pub fn pending_count_of(&self, device_id: &str) -> usize {
        self.by_device
            .get(device_id)
            .map_or(0, |m| m.iter().filter(|m| m.status == MessageStatus::Pending).count())
    }

    /// Forgets every message of the device (it was deleted).
    pub fn remove_device(&mut self, device_id: &str) {
        for message in self.by_device.remove(device_id).unwrap_or_default() {
            self.unindex(&message);
        }
    }

    /// The device's pending messages in acceptance order.
    pub fn pending(&self, device_id: &str) -> Vec<MessageRecord> {
        self.by_device
            .get(device_id)
            .map(|m| m.iter().filter(|m| m.status == MessageStatus::Pending).cloned().collect())
            .unwrap_or_default()
    }

    /// Pending messages whose TTL has run out at `now_ms`, oldest deadline first.
    pub fn expired(&self, now_ms: i64) -> Vec<(String, String)> {
        self.deadlines
            .iter()
            .take_while(|(expires, _, _)| *expires <= now_ms)
            .map(|(_, device_id, message_id)| (device_id.clone(), message_id.clone()))
            .collect()
    }

    /// The earliest expiry of a pending message.
    pub fn next_expiry_ms(&self) -> Option<i64> {
        self.deadlines.first().map(|(expires, _, _)| *expires)
    }

    /// Every message, for a snapshot.
    pub fn iter(&self) -> impl Iterator<Item = &MessageRecord> {
        self.by_device.values().flatten()
    }

    pub fn len(&self) -> usize {
        self.by_device.values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_device.is_empty()
    }

    fn index(&mut self, message: &MessageRecord) {
        if message.status == MessageStatus::Pending {
            self.deadlines.insert((
                expires_ms(message),
                message.device_id.clone(),
                message.message_id.clone(),
            ));
        }
    }

    fn unindex(&mut self, message: &MessageRecord) {
        self.deadlines.remove(&(expires_ms(message), message.device_id.clone(), message.message_id.clone()));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn message(device_id: &str, message_id: &str, seq: u64, created_ms: i64) -> MessageRecord {
        MessageRecord {
            device_id: device_id.into(),
            message_id: message_id.into(),
            seq,
            name: None,
            message_json: "\"hello\"".into(),
            encoding: "none".into(),
            payload_format: "standard".into(),
            topic: None,
            topic_full_name: None,
            properties_json: None,
            ttl_minutes: 5,
            status: MessageStatus::Pending,
            error_code: None,
            error_msg: None,
            created_ms,
            finished_ms: None,
        }
    }

    #[test]
    fn the_twenty_first_message_evicts_the_oldest() {
        let mut history = History::default();
        for n in 0..HISTORY_MAX as u64 {
            assert!(history.insert(message("d1", &format!("m{n}"), n, 0)).is_none());
        }
        history.insert(message("d2", "other", 100, 0));
        let evicted = history.insert(message("d1", "m20", 20, 0)).expect("the oldest goes");
        assert_eq!(evicted.message_id, "m0");
        let ids: Vec<String> = history.list("d1").into_iter().map(|m| m.message_id).collect();
        assert_eq!(ids.len(), HISTORY_MAX);
        assert_eq!((ids[0].as_str(), ids[19].as_str()), ("m1", "m20"));
        assert!(history.get("d1", "m0").is_none());
        assert!(!history.expired(i64::MAX).contains(&("d1".into(), "m0".into())), "no deadline left behind");
        assert_eq!(history.list("d2").len(), 1, "other devices keep theirs");
    }

    #[test]
    fn ttl_expiry_follows_a_fake_clock_and_ignores_finished_messages() {
        let mut history = History::default();
        history.insert(message("d1", "a", 1, 1_000)); // expires at 301_000
        let mut late = message("d1", "b", 2, 60_000); // expires at 360_000
        history.insert(late.clone());
        let mut zero = message("d2", "c", 3, 0);
        zero.ttl_minutes = 0;
        zero.status = MessageStatus::Failed;
        history.insert(zero);
        assert_eq!(history.next_expiry_ms(), Some(301_000));
        assert!(history.expired(300_999).is_empty());
        assert_eq!(history.expired(301_000), [("d1".to_string(), "a".to_string())]);
        late.status = MessageStatus::Delivered;
        assert!(history.update(late));
        assert_eq!(history.expired(i64::MAX).len(), 1, "a delivered message never expires");
        assert_eq!(history.pending("d1").len(), 1);
    }

    #[test]
    fn pending_messages_come_in_acceptance_order_and_recovery_keeps_it() {
        let messages = vec![message("d1", "z", 3, 0), message("d1", "a", 1, 0), message("d1", "m", 2, 0)];
        let mut history = History::recovered(messages);
        let order: Vec<String> = history.pending("d1").into_iter().map(|m| m.message_id).collect();
        assert_eq!(order, ["a", "m", "z"]);
        assert_eq!(history.next_seq(), 4, "numbering goes on after the newest");
        history.remove_device("d1");
        assert!(history.is_empty());
        assert_eq!(history.next_expiry_ms(), None);
        assert!(!history.update(message("d1", "a", 1, 0)));
    }
}

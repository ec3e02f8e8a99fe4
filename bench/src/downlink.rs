//! What the fleet's devices received, for the scenarios that check deliveries rather than
//! round trips: the device messages on `$oc/devices/{id}/sys/messages/down` (per device, in
//! arrival order, with the ids the scenario expects) and the time each command request
//! reached its device.
//!
//! The fleet reports into a [`DownlinkLog`] when its config carries one; a log made with
//! [`DownlinkLog::expecting`] knows which message ids each device should get, in creation
//! order, so the scenario can wait for exactly those and tell messages left over from an
//! earlier run on a long-lived engine ("foreign") from missing or misordered ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

use crate::stats::LatencyHistogram;

/// The standard message payload (spec §1.5): `{"name":…,"id":…,"content":…}`.
#[derive(Debug, Deserialize)]
struct StandardMessage {
    id: String,
}

/// The message id of a standard message payload, or `None` if it is not one.
pub fn message_id_of(payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<StandardMessage>(payload).ok().map(|message| message.id)
}

/// What one device received.
#[derive(Debug, Default)]
struct Inbox {
    /// The ids this device should receive, in creation order.
    expected: Vec<String>,
    /// Every message id received (payloads that are not standard messages give ""), in order.
    received: Vec<String>,
    /// How many of `expected` arrived in order so far (the fast path of the membership test).
    in_order: usize,
    connect_sent: Option<Instant>,
    /// When the last expected message arrived.
    last_expected_at: Option<Instant>,
}

/// The fleet's downlink, shared by the device tasks (one uncontended lock per device).
#[derive(Debug, Default)]
pub struct DownlinkLog {
    inboxes: Vec<Mutex<Inbox>>,
    expected_received: AtomicU64,
    foreign_received: AtomicU64,
    commands: Mutex<Vec<Instant>>,
}

/// The outcome of a delivery check over the whole fleet.
#[derive(Debug)]
pub struct DeliveryCheck {
    /// Expected messages received (in order or not).
    pub received: u64,
    /// Messages received that this run did not create.
    pub foreign: u64,
    /// Missing, extra or misplaced messages (see [`order_errors`]).
    pub errors: u64,
    /// Devices whose received sequence differs from their expected one.
    pub devices_wrong: u64,
    /// The first such device: (index, expected, received), for the error message.
    pub first_wrong: Option<(u64, Vec<String>, Vec<String>)>,
    /// When the last expected message arrived anywhere.
    pub last_at: Option<Instant>,
    /// Per device with all its messages: its CONNECT sent → its last message received.
    pub per_device: LatencyHistogram,
}

impl DownlinkLog {
    /// A log that expects `expected[i]` (message ids in creation order) on device `i`.
    pub fn expecting(expected: Vec<Vec<String>>) -> DownlinkLog {
        let inboxes = expected.into_iter().map(|expected| Mutex::new(Inbox { expected, ..Inbox::default() }));
        DownlinkLog { inboxes: inboxes.collect(), ..DownlinkLog::default() }
    }

    /// Device `index` sent its CONNECT at `at` and was accepted.
    pub fn connected(&self, index: u64, at: Instant) {
        if let Some(inbox) = self.inboxes.get(index as usize) {
            inbox.lock().expect("an inbox lock is never poisoned").connect_sent = Some(at);
        }
    }

    /// Device `index` received a publish on its `sys/messages/down` topic.
    pub fn message(&self, index: u64, payload: &[u8]) {
        let Some(inbox) = self.inboxes.get(index as usize) else { return };
        let id = message_id_of(payload).unwrap_or_default();
        let mut inbox = inbox.lock().expect("an inbox lock is never poisoned");
        let expected = if inbox.expected.get(inbox.in_order) == Some(&id) {
            inbox.in_order += 1;
            true
        } else {
            inbox.expected.contains(&id)
        };
        if expected {
            inbox.last_expected_at = Some(Instant::now());
            self.expected_received.fetch_add(1, Ordering::Relaxed);
        } else {
            self.foreign_received.fetch_add(1, Ordering::Relaxed);
        }
        inbox.received.push(id);
    }

    /// A command request reached a device now.
    pub fn command(&self) {
        self.commands.lock().expect("the command log lock is never poisoned").push(Instant::now());
    }

    /// Expected messages received so far.
    pub fn expected_received(&self) -> u64 {
        self.expected_received.load(Ordering::Relaxed)
    }

    /// Messages received so far that were not expected.
    pub fn foreign_received(&self) -> u64 {
        self.foreign_received.load(Ordering::Relaxed)
    }

    /// When each command request reached its device, in arrival order.
    pub fn command_times(&self) -> Vec<Instant> {
        self.commands.lock().expect("the command log lock is never poisoned").clone()
    }

    /// Compares every device's received messages with its expected ones.
    pub fn check(&self) -> DeliveryCheck {
        let mut check = DeliveryCheck {
            received: self.expected_received(),
            foreign: self.foreign_received(),
            errors: 0,
            devices_wrong: 0,
            first_wrong: None,
            last_at: None,
            per_device: LatencyHistogram::new(),
        };
        for (index, inbox) in self.inboxes.iter().enumerate() {
            let inbox = inbox.lock().expect("an inbox lock is never poisoned");
            let ours: Vec<String> =
                inbox.received.iter().filter(|id| inbox.expected.contains(id)).cloned().collect();
            let errors = order_errors(&inbox.expected, &ours);
            if errors > 0 {
                check.errors += errors;
                check.devices_wrong += 1;
                check.first_wrong.get_or_insert_with(|| (index as u64, inbox.expected.clone(), ours));
            } else if let (Some(connect), Some(last)) = (inbox.connect_sent, inbox.last_expected_at) {
                check.per_device.record_us(last.saturating_duration_since(connect).as_micros() as u64);
            }
            if let Some(last) = inbox.last_expected_at {
                check.last_at = Some(check.last_at.map_or(last, |at: Instant| at.max(last)));
            }
        }
        check
    }
}

/// How far `received` is from `expected`: the longer length minus the positions where both
/// hold the same id. 0 means exactly the expected messages in the expected order; a missing
/// message counts 1 (and shifts the ones after it), two swapped ones count 2, a duplicate 1
/// plus whatever it shifts.
pub fn order_errors(expected: &[String], received: &[String]) -> u64 {
    let matching = expected.iter().zip(received).filter(|(want, got)| want == got).count();
    (expected.len().max(received.len()) - matching) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn standard_payloads_give_their_id() {
        let payload = br#"{"name":null,"id":"a1b2","content":"m-3"}"#;
        assert_eq!(message_id_of(payload).as_deref(), Some("a1b2"));
        assert_eq!(message_id_of(b"m-3"), None);
        assert_eq!(message_id_of(br#"{"content":"m-3"}"#), None);
    }

    #[test]
    fn the_expected_sequence_has_no_errors() {
        assert_eq!(order_errors(&ids(&["a", "b", "c"]), &ids(&["a", "b", "c"])), 0);
        assert_eq!(order_errors(&[], &[]), 0);
    }

    #[test]
    fn missing_swapped_and_duplicate_messages_are_errors() {
        let expected = ids(&["a", "b", "c"]);
        assert_eq!(order_errors(&expected, &ids(&["a", "b"])), 1);
        assert_eq!(order_errors(&expected, &ids(&[])), 3);
        assert_eq!(order_errors(&expected, &ids(&["b", "a", "c"])), 2);
        assert_eq!(order_errors(&expected, &ids(&["a", "b", "c", "c"])), 1);
        assert_eq!(order_errors(&expected, &ids(&["a", "c"])), 2);
    }

    fn standard(id: &str) -> Vec<u8> {
        format!(r#"{{"name":null,"id":"{id}","content":"m-0"}}"#).into_bytes()
    }

    #[test]
    fn the_log_tells_in_order_misordered_and_foreign_messages_apart() {
        let log = DownlinkLog::expecting(vec![ids(&["a", "b"]), ids(&["c", "d"]), ids(&["e"])]);
        let start = Instant::now();
        for index in 0..3 {
            log.connected(index, start);
        }
        for (index, id) in [(0, "a"), (1, "old"), (1, "d"), (0, "b"), (1, "c")] {
            log.message(index, &standard(id));
        }
        log.message(2, b"not json");
        assert_eq!(log.expected_received(), 4);
        assert_eq!(log.foreign_received(), 2);
        let check = log.check();
        assert_eq!(check.received, 4);
        assert_eq!(check.foreign, 2);
        // Device 1 got d before c (2 errors), device 2 never got e (1 error).
        assert_eq!(check.errors, 3);
        assert_eq!(check.devices_wrong, 2);
        assert_eq!(check.first_wrong, Some((1, ids(&["c", "d"]), ids(&["d", "c"]))));
        assert_eq!(check.per_device.count(), 1, "only device 0 got all of its messages in order");
        assert!(check.last_at.is_some());
    }

    #[test]
    fn a_log_without_expectations_ignores_messages_and_keeps_commands() {
        let log = DownlinkLog::default();
        log.message(5, &standard("x"));
        log.connected(5, Instant::now());
        log.command();
        log.command();
        assert_eq!(log.expected_received() + log.foreign_received(), 0);
        assert_eq!(log.command_times().len(), 2);
    }
}

//! The calls waiting for a device's answer, as plain data: keyed by request id, bounded per
//! device. The completion handle `T` is whatever wakes the caller (a channel sender in the
//! shard, a plain value in tests).
//!
//! Invariants:
//! - A request id is in the table at most once, and is counted under exactly one device.
//! - An answer completes a waiter only if it comes from the waiter's device on the waiter's
//!   kind of response topic; anything else leaves the table as it is.

use std::collections::HashMap;

use super::CallKind;

#[derive(Debug)]
struct Waiter<T> {
    /// The device the call is for (the per-device bound counts it).
    device_id: String,
    /// The connection whose answer completes it: the device, or a sub-device's gateway.
    answerer: String,
    kind: CallKind,
    completion: T,
}

/// No room for another waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The device already has as many calls waiting as allowed.
    Device,
    /// The sub-device's gateway already has [`GATEWAY_CALLS_MAX`] calls waiting.
    Gateway,
}

#[derive(Debug)]
pub struct Waiters<T> {
    by_request: HashMap<String, Waiter<T>>,
    /// The waiting request ids of each device with at least one.
    by_device: HashMap<String, Vec<String>>,
    per_device_max: usize,
    /// Calls a gateway answers for its sub-devices, per gateway: every one of them is a packet
    /// on the gateway's one connection, whose queue is bounded.
    by_gateway: HashMap<String, usize>,
}

/// Calls that may wait at once for one gateway's answers (for all its sub-devices together):
/// half the connection's outbound queue, so a burst is refused (429) before it can fill the
/// queue and cut the gateway off.
pub const GATEWAY_CALLS_MAX: usize = crate::device_access::link::OUTBOUND_PACKETS_MAX / 2;

impl<T> Waiters<T> {
    pub fn new(per_device_max: usize) -> Self {
        Waiters {
            by_request: HashMap::new(),
            by_device: HashMap::new(),
            per_device_max,
            by_gateway: HashMap::new(),
        }
    }

    /// Changes the bound; waiters already registered stay.
    pub fn set_per_device_max(&mut self, per_device_max: usize) {
        self.per_device_max = per_device_max;
    }

    /// Adds a waiter; [`Busy::Device`] (and nothing added) when the device has
    /// `per_device_max` ([`Waiters::register_answered_by`] may also say [`Busy::Gateway`]).
    /// The request id must be fresh (the shard generates unique ones).
    pub fn register(
        &mut self,
        request_id: &str,
        device_id: &str,
        kind: CallKind,
        completion: T,
    ) -> Result<(), Busy> {
        self.register_answered_by(request_id, device_id, device_id, kind, completion)
    }

    /// [`Waiters::register`] for a call `answerer` answers (a sub-device's, by its gateway):
    /// bounded per `device_id`, completed by `answerer`'s answer.
    pub fn register_answered_by(
        &mut self,
        request_id: &str,
        device_id: &str,
        answerer: &str,
        kind: CallKind,
        completion: T,
    ) -> Result<(), Busy> {
        let through_gateway = answerer != device_id;
        if through_gateway && self.by_gateway.get(answerer).is_some_and(|&calls| calls >= GATEWAY_CALLS_MAX) {
            return Err(Busy::Gateway);
        }
        let waiting = self.by_device.entry(device_id.to_owned()).or_default();
        if waiting.len() >= self.per_device_max {
            if waiting.is_empty() {
                self.by_device.remove(device_id);
            }
            return Err(Busy::Device);
        }
        waiting.push(request_id.to_owned());
        if through_gateway {
            *self.by_gateway.entry(answerer.to_owned()).or_default() += 1;
        }
        let previous = self.by_request.insert(
            request_id.to_owned(),
            Waiter { device_id: device_id.to_owned(), answerer: answerer.to_owned(), kind, completion },
        );
        debug_assert!(previous.is_none(), "request ids are unique");
        Ok(())
    }

    /// The waiter an answer belongs to, removed; `None` if the id is unknown (late, or never
    /// issued) or belongs to another device or another kind of call.
    pub fn complete(&mut self, answerer: &str, kind: CallKind, request_id: &str) -> Option<T> {
        let waiter = self.by_request.get(request_id)?;
        if waiter.answerer != answerer || waiter.kind != kind {
            return None;
        }
        self.remove(request_id)
    }

    /// Removes a waiter (its deadline passed, or its caller went away).
    pub fn remove(&mut self, request_id: &str) -> Option<T> {
        let waiter = self.by_request.remove(request_id)?;
        self.forget_gateway_call(&waiter);
        if let Some(waiting) = self.by_device.get_mut(&waiter.device_id) {
            waiting.retain(|id| id != request_id);
            if waiting.is_empty() {
                self.by_device.remove(&waiter.device_id);
            }
        }
        Some(waiter.completion)
    }

    /// Removes every waiter of the device (it was deleted).
    pub fn remove_device(&mut self, device_id: &str) -> Vec<T> {
        let Some(waiting) = self.by_device.remove(device_id) else { return Vec::new() };
        let removed: Vec<Waiter<T>> = waiting.iter().filter_map(|id| self.by_request.remove(id)).collect();
        removed
            .into_iter()
            .map(|waiter| {
                self.forget_gateway_call(&waiter);
                waiter.completion
            })
            .collect()
    }

    fn forget_gateway_call(&mut self, waiter: &Waiter<T>) {
        if waiter.answerer == waiter.device_id {
            return;
        }
        if let Some(calls) = self.by_gateway.get_mut(&waiter.answerer) {
            *calls -= 1;
            if *calls == 0 {
                self.by_gateway.remove(&waiter.answerer);
            }
        }
    }

    pub fn waiting_for(&self, device_id: &str) -> usize {
        self.by_device.get(device_id).map_or(0, Vec::len)
    }

    pub fn len(&self) -> usize {
        self.by_request.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_request.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_complete_only_their_own_waiter() {
        let mut waiters = Waiters::new(4);
        waiters.register("r1", "d1", CallKind::Command, 1).unwrap();
        waiters.register("r2", "d1", CallKind::PropertiesSet, 2).unwrap();
        waiters.register("r3", "d2", CallKind::Command, 3).unwrap();
        assert_eq!(waiters.complete("d2", CallKind::Command, "r1"), None, "another device's id");
        assert_eq!(waiters.complete("d1", CallKind::PropertiesGet, "r2"), None, "another kind of answer");
        assert_eq!(waiters.complete("d1", CallKind::Command, "nope"), None);
        assert_eq!(waiters.len(), 3, "unmatched answers change nothing");
        assert_eq!(waiters.complete("d1", CallKind::Command, "r1"), Some(1));
        assert_eq!(waiters.complete("d1", CallKind::Command, "r1"), None, "a second answer is late");
        assert_eq!(waiters.complete("d1", CallKind::PropertiesSet, "r2"), Some(2));
        assert_eq!(waiters.waiting_for("d1"), 0);
        assert_eq!(waiters.len(), 1);
    }

    #[test]
    fn a_gateways_calls_are_bounded_together_and_freed() {
        let mut waiters = Waiters::new(4);
        for n in 0..GATEWAY_CALLS_MAX {
            waiters
                .register_answered_by(&format!("r{n}"), &format!("s{n}"), "gw", CallKind::Command, ())
                .unwrap();
        }
        assert_eq!(
            waiters.register_answered_by("over", "s-new", "gw", CallKind::Command, ()),
            Err(Busy::Gateway)
        );
        waiters.register_answered_by("other", "s-new", "gw2", CallKind::Command, ()).unwrap();
        assert!(waiters.remove("r0").is_some());
        waiters.register_answered_by("again", "s-new", "gw", CallKind::Command, ()).unwrap();
        assert_eq!(waiters.remove_device("s1").len(), 1);
        waiters.register_answered_by("after-delete", "s-other", "gw", CallKind::Command, ()).unwrap();
        assert!(waiters.complete("gw", CallKind::Command, "again").is_some(), "the gateway answers");
    }

    #[test]
    fn the_bound_is_per_device_and_freed_by_removal() {
        let mut waiters = Waiters::new(2);
        waiters.register("a", "d1", CallKind::Command, ()).unwrap();
        waiters.register("b", "d1", CallKind::Command, ()).unwrap();
        assert_eq!(waiters.register("c", "d1", CallKind::Command, ()), Err(Busy::Device));
        assert_eq!(waiters.len(), 2, "a refused waiter is not added");
        waiters.register("c", "d2", CallKind::Command, ()).unwrap();
        assert!(waiters.remove("a").is_some());
        assert!(waiters.remove("a").is_none());
        waiters.register("d", "d1", CallKind::Command, ()).unwrap();
        assert_eq!(waiters.waiting_for("d1"), 2);
    }

    #[test]
    fn removing_a_device_removes_all_its_waiters_and_only_them() {
        let mut waiters = Waiters::new(8);
        for (id, device) in [("a", "d1"), ("b", "d2"), ("c", "d1")] {
            waiters.register(id, device, CallKind::Command, id).unwrap();
        }
        let mut removed = waiters.remove_device("d1");
        removed.sort();
        assert_eq!(removed, ["a", "c"]);
        assert!(waiters.remove_device("d1").is_empty());
        assert_eq!(waiters.len(), 1);
        assert_eq!(waiters.complete("d2", CallKind::Command, "b"), Some("b"));
        assert!(waiters.is_empty());
        let zero: Waiters<()> = Waiters::new(0);
        assert_eq!(zero.waiting_for("d1"), 0);
    }
}

//! The outbox: one FIFO queue per target, all of them together bounded, no I/O.
//!
//! Every push gets a sequence number from one shard-wide counter, so "the oldest push" is well
//! defined across targets. `heads` maps the sequence number of each non-empty queue's head to
//! that queue's key; its first entry is the globally oldest push, found in O(log targets).
//! When the outbox is full, that push is dropped — a receiver that has been down for a long
//! time loses its oldest pushes first, while a healthy receiver's fresh pushes survive.
//!
//! A sender keeps its head push in the queue while the request is in flight (so it is counted
//! and can be dropped), and removes it afterwards with [`Outbox::complete`], which checks the
//! sequence number: a head dropped meanwhile is not confused with its successor.
//!
//! Invariants: `queued` equals the sum of the queue lengths and never exceeds `queued_max`;
//! no queue in `queues` is empty; `heads` holds exactly one entry per queue, its head.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;

use bytes::Bytes;

/// One queued push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueuedPush {
    /// Position in the shard-wide order of enqueueing.
    pub(crate) sequence: u64,
    /// The JSON envelope to POST.
    pub(crate) body: Bytes,
}

/// Per-target FIFO queues under one bound.
#[derive(Debug)]
pub(crate) struct Outbox<K> {
    queues: HashMap<K, VecDeque<QueuedPush>>,
    heads: BTreeMap<u64, K>,
    queued: usize,
    queued_max: usize,
    next_sequence: u64,
}

impl<K: Clone + Eq + Hash> Outbox<K> {
    pub(crate) fn new(queued_max: usize) -> Self {
        Outbox { queues: HashMap::new(), heads: BTreeMap::new(), queued: 0, queued_max, next_sequence: 0 }
    }

    /// Pushes currently queued, in-flight heads included.
    pub(crate) fn len(&self) -> usize {
        self.queued
    }

    /// Appends a push to `key`'s queue. When the outbox is full, the globally oldest push is
    /// dropped first; returns how many pushes were dropped (0 or 1; with `queued_max == 0` the
    /// new push itself is the one dropped).
    pub(crate) fn push(&mut self, key: K, body: Bytes) -> usize {
        if self.queued_max == 0 {
            return 1;
        }
        let mut dropped = 0;
        while self.queued >= self.queued_max && self.drop_oldest() {
            dropped += 1;
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let queue = self.queues.entry(key.clone()).or_default();
        if queue.is_empty() {
            self.heads.insert(sequence, key);
        }
        queue.push_back(QueuedPush { sequence, body });
        self.queued += 1;
        dropped
    }

    /// The oldest push of `key`'s queue, the one its sender must deliver next.
    pub(crate) fn front<Q>(&self, key: &Q) -> Option<QueuedPush>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.queues.get(key).and_then(|queue| queue.front()).cloned()
    }

    /// Removes `key`'s head if it is still the push `sequence` (it may have been dropped while
    /// in flight). Returns whether it was removed.
    pub(crate) fn complete<Q>(&mut self, key: &Q, sequence: u64) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let head_matches =
            self.queues.get(key).and_then(|queue| queue.front()).map(|head| head.sequence) == Some(sequence);
        if head_matches {
            self.pop_head(sequence);
        }
        head_matches
    }

    /// Removes every push of `key`; returns how many there were.
    pub(crate) fn remove_queue<Q>(&mut self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(queue) = self.queues.remove(key) else { return 0 };
        if let Some(head) = queue.front() {
            self.heads.remove(&head.sequence);
        }
        self.queued -= queue.len();
        queue.len()
    }

    /// Removes every push of every target; returns how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let removed = self.queued;
        self.queues.clear();
        self.heads.clear();
        self.queued = 0;
        removed
    }

    fn drop_oldest(&mut self) -> bool {
        match self.heads.first_key_value() {
            Some((&sequence, _)) => {
                self.pop_head(sequence);
                true
            }
            None => false,
        }
    }

    /// Pops the head push `sequence`, which must be the head of its queue.
    fn pop_head(&mut self, sequence: u64) {
        let Some(key) = self.heads.remove(&sequence) else { return };
        let Some(queue) = self.queues.get_mut(&key) else { return };
        queue.pop_front();
        self.queued -= 1;
        match queue.front() {
            Some(next) => {
                self.heads.insert(next.sequence, key);
            }
            None => {
                self.queues.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn bodies<Q>(&self, key: &Q) -> Vec<&[u8]>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.queues.get(key).map_or_else(Vec::new, |queue| queue.iter().map(|push| &push.body[..]).collect())
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.queued, self.queues.values().map(VecDeque::len).sum::<usize>());
        assert!(self.queued <= self.queued_max);
        assert_eq!(self.heads.len(), self.queues.len());
        for (key, queue) in &self.queues {
            let head = queue.front().expect("no empty queue is kept");
            assert!(self.heads.get(&head.sequence) == Some(key));
            assert!(queue.iter().zip(queue.iter().skip(1)).all(|(a, b)| a.sequence < b.sequence));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[test]
    fn each_target_keeps_its_own_fifo_order() {
        let mut outbox = Outbox::new(10);
        for (key, text) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2"), ("a", "a3")] {
            assert_eq!(outbox.push(key, body(text)), 0);
        }
        outbox.check_invariants();
        assert_eq!(outbox.bodies("a"), [b"a1", b"a2", b"a3"]);
        assert_eq!(outbox.bodies("b"), [b"b1", b"b2"]);
        assert_eq!(outbox.len(), 5);
    }

    #[test]
    fn a_full_outbox_drops_the_globally_oldest_push() {
        let mut outbox = Outbox::new(3);
        outbox.push("dead", body("d1"));
        outbox.push("live", body("l1"));
        outbox.push("dead", body("d2"));
        assert_eq!(outbox.push("live", body("l2")), 1);
        outbox.check_invariants();
        assert_eq!(outbox.bodies("dead"), [b"d2"]);
        assert_eq!(outbox.bodies("live"), [b"l1", b"l2"]);
        assert_eq!(outbox.push("live", body("l3")), 1);
        outbox.check_invariants();
        assert_eq!(outbox.bodies("dead"), [b"d2"]);
        assert_eq!(outbox.bodies("live"), [b"l2", b"l3"]);
    }

    #[test]
    fn five_pushes_into_three_slots_keep_the_three_newest() {
        let mut outbox = Outbox::new(3);
        let dropped: usize =
            ["1", "2", "3", "4", "5"].into_iter().map(|text| outbox.push("t", body(text))).sum();
        assert_eq!(dropped, 2);
        assert_eq!(outbox.bodies("t"), [b"3", b"4", b"5"]);
        outbox.check_invariants();
    }

    #[test]
    fn a_zero_bound_drops_every_push() {
        let mut outbox = Outbox::new(0);
        assert_eq!(outbox.push("t", body("1")), 1);
        assert_eq!(outbox.len(), 0);
        assert_eq!(outbox.front("t"), None);
    }

    #[test]
    fn complete_removes_the_head_only_if_it_is_still_the_same_push() {
        let mut outbox = Outbox::new(2);
        outbox.push("t", body("1"));
        let in_flight = outbox.front("t").unwrap();
        outbox.push("t", body("2"));
        outbox.push("t", body("3")); // drops "1" while it is in flight
        assert!(!outbox.complete("t", in_flight.sequence));
        assert_eq!(outbox.bodies("t"), [b"2", b"3"]);
        let next = outbox.front("t").unwrap();
        assert_eq!(next.body, body("2"));
        assert!(outbox.complete("t", next.sequence));
        assert!(outbox.complete("t", outbox.front("t").unwrap().sequence));
        assert_eq!(outbox.front("t"), None);
        assert_eq!(outbox.len(), 0);
        outbox.check_invariants();
    }

    #[test]
    fn removing_a_queue_or_clearing_counts_what_went() {
        let mut outbox = Outbox::new(10);
        outbox.push("a", body("a1"));
        outbox.push("b", body("b1"));
        outbox.push("a", body("a2"));
        assert_eq!(outbox.remove_queue("a"), 2);
        assert_eq!(outbox.remove_queue("a"), 0);
        outbox.check_invariants();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox.clear(), 1);
        outbox.check_invariants();
        // The sequence keeps counting, so order stays global after a clear.
        outbox.push("b", body("b2"));
        assert!(outbox.front("b").unwrap().sequence > 2);
    }

    #[test]
    fn random_operations_keep_the_invariants() {
        // A small deterministic LCG drives pushes and completions over a few targets.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let keys = ["a", "b", "c", "d"];
        let mut outbox = Outbox::new(7);
        for _ in 0..5_000 {
            let key = keys[next() % keys.len()];
            if next() % 3 == 0 {
                if let Some(head) = outbox.front(key) {
                    assert!(outbox.complete(key, head.sequence));
                }
            } else {
                outbox.push(key, body("x"));
            }
            outbox.check_invariants();
        }
    }
}

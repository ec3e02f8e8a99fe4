//! Admission of MQTT connections that have not logged in yet: the bounds that keep a flood of
//! connections that never send a CONNECT from taking the descriptors everyone else needs.
//!
//! - Process-wide, MQTT connections hold at most the share of the open-files limit that
//!   [`crate::listen::DescriptorPlan`] gives them (a [`crate::listen::DescriptorBudget`] slot
//!   per connection, taken at accept, given back when the descriptor closes on whichever shard
//!   it ends).
//! - Per shard, at most `connecting_per_shard_max` connections wait for their CONNECT. When
//!   one more arrives, the **oldest** waiting one is shut down to make room, rather than the
//!   newcomer refused: an attacker's half-open connections then only ever push each other
//!   out, while a device — which sends its CONNECT right after the TCP handshake — is read
//!   long before it becomes the oldest.
//! - A connection that sends nothing within `first_byte_timeout` is closed (a few seconds);
//!   one that started must complete its CONNECT within `connect_timeout`.
//!
//! Invariants:
//! - A waiting connection leaves the table ([`Waiting`] dropped) before its descriptor is
//!   closed or handed to another shard, so an eviction never shuts down a reused descriptor.
//! - Evictions happen only in [`Admission::enter`], synchronously on the shard's thread.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::rc::Rc;

/// What the shard's admission did, for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionCounts {
    /// Waiting connections shut down to make room for a newer one.
    pub evicted: u64,
    /// Connections closed for sending nothing within the first-byte timeout.
    pub silent_timeouts: u64,
    /// Connections closed for not completing their CONNECT within the connect timeout.
    pub connect_timeouts: u64,
    /// Connections refused at once: the process-wide MQTT budget or the shard's bound is spent.
    pub refused_full: u64,
}

/// The connections of one shard that wait for their CONNECT, oldest first.
#[derive(Debug)]
pub struct Admission {
    waiting: RefCell<BTreeMap<u64, RawFd>>,
    next_ticket: Cell<u64>,
    waiting_max: usize,
    counts: Cell<AdmissionCounts>,
}

impl Admission {
    pub fn new(waiting_max: usize) -> Rc<Self> {
        Rc::new(Admission {
            waiting: RefCell::new(BTreeMap::new()),
            next_ticket: Cell::new(0),
            waiting_max: waiting_max.max(1),
            counts: Cell::new(AdmissionCounts::default()),
        })
    }

    /// Enters a new connection (`raw_fd`, owned by the caller until the returned [`Waiting`]
    /// is dropped), shutting the oldest waiting one down first if the table is full.
    pub fn enter(self: &Rc<Self>, raw_fd: RawFd) -> Waiting {
        let mut waiting = self.waiting.borrow_mut();
        while waiting.len() >= self.waiting_max {
            let Some((_, oldest_fd)) = waiting.pop_first() else { break };
            // SAFETY: a descriptor in the table is open: its owner removes it (dropping its
            // `Waiting`) before closing it. shutdown(2) does not close it; the owner's read
            // sees EOF.
            unsafe { libc::shutdown(oldest_fd, libc::SHUT_RDWR) };
            self.count(|counts| counts.evicted += 1);
        }
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        waiting.insert(ticket, raw_fd);
        Waiting { admission: self.clone(), ticket }
    }

    /// Connections waiting for their CONNECT now.
    pub fn waiting(&self) -> usize {
        self.waiting.borrow().len()
    }

    pub fn counts(&self) -> AdmissionCounts {
        self.counts.get()
    }

    pub fn count(&self, change: impl FnOnce(&mut AdmissionCounts)) {
        let mut counts = self.counts.get();
        change(&mut counts);
        self.counts.set(counts);
    }
}

/// A connection's place in the waiting table; leaves it when dropped.
#[derive(Debug)]
pub struct Waiting {
    admission: Rc<Admission>,
    ticket: u64,
}

impl Waiting {
    /// Whether this connection was shut down to make room for a newer one.
    pub fn was_evicted(&self) -> bool {
        !self.admission.waiting.borrow().contains_key(&self.ticket)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.admission.waiting.borrow_mut().remove(&self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_oldest_waiting_connection_makes_room_for_a_new_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let mut accepted = Vec::new();
        for _ in 0..3 {
            let client = std::net::TcpStream::connect(address).unwrap();
            accepted.push((client, listener.accept().unwrap().0));
        }
        let admission = Admission::new(2);
        use std::os::fd::AsRawFd;
        let first = admission.enter(accepted[0].1.as_raw_fd());
        let second = admission.enter(accepted[1].1.as_raw_fd());
        assert_eq!(admission.waiting(), 2);
        let third = admission.enter(accepted[2].1.as_raw_fd());
        assert!(first.was_evicted() && !second.was_evicted() && !third.was_evicted());
        assert_eq!((admission.waiting(), admission.counts().evicted), (2, 1));
        // The evicted connection's own reads end: it was shut down, not closed.
        let mut byte = [0u8; 1];
        assert_eq!((&accepted[0].1).read(&mut byte).unwrap(), 0);
        drop((first, second));
        assert_eq!(admission.waiting(), 1);
        drop(third);
        assert_eq!(admission.waiting(), 0);
    }
}

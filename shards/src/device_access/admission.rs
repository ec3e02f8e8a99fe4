//! Admission of MQTT connections that have not logged in yet: the bounds that keep a flood of
//! connections that never send a CONNECT from taking the descriptors everyone else needs.
//!
//! - Process-wide, MQTT connections hold at most the share of the open-files limit that
//!   [`crate::listen::DescriptorPlan`] gives them (a [`crate::listen::DescriptorBudget`] slot
//!   per connection, taken at accept, given back when the descriptor closes on whichever shard
//!   it ends).
//! - Per shard, at most `connecting_per_shard_max` connections wait for their CONNECT. When
//!   one more arrives — or the process-wide budget is spent while connections wait — the
//!   **oldest silent** waiting one is shut down to make room (one that started its CONNECT
//!   only when none is silent), rather than the newcomer refused: an attacker's half-open
//!   connections then only ever push each other out, while a device — which sends its CONNECT
//!   right after the TCP handshake — is read long before it becomes the oldest. A connection
//!   whose first bytes are already in its socket when it is accepted counts as started at once
//!   ([`has_bytes_waiting`]): glommio accepts a full backlog without waiting and reads only
//!   once its reactor runs, so without that look a burst of silent connections would evict
//!   devices whose CONNECT sits unread in their socket.
//! - An evicted connection never logs in, even if its CONNECT was read: its socket is shut down.
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

/// The connections of one shard that wait for their CONNECT, oldest first: those that have sent
/// nothing yet apart from those that have started their CONNECT, so that a flood's silent
/// connections are evicted before a device's half-read CONNECT.
#[derive(Debug)]
pub struct Admission {
    silent: RefCell<BTreeMap<u64, RawFd>>,
    started: RefCell<BTreeMap<u64, RawFd>>,
    next_ticket: Cell<u64>,
    waiting_max: usize,
    counts: Cell<AdmissionCounts>,
}

impl Admission {
    pub fn new(waiting_max: usize) -> Rc<Self> {
        Rc::new(Admission {
            silent: RefCell::new(BTreeMap::new()),
            started: RefCell::new(BTreeMap::new()),
            next_ticket: Cell::new(0),
            waiting_max: waiting_max.max(1),
            counts: Cell::new(AdmissionCounts::default()),
        })
    }

    /// Enters a new connection (`raw_fd`, owned by the caller until the returned [`Waiting`]
    /// is dropped), evicting the oldest waiting one first if the table is full.
    pub fn enter(self: &Rc<Self>, raw_fd: RawFd) -> Waiting {
        while self.waiting() >= self.waiting_max && self.evict_oldest() {}
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        self.silent.borrow_mut().insert(ticket, raw_fd);
        Waiting { admission: self.clone(), ticket }
    }

    /// Shuts the oldest waiting connection down — the oldest silent one if any — to make room;
    /// `false` if none waits.
    pub fn evict_oldest(&self) -> bool {
        let oldest = self.silent.borrow_mut().pop_first().or_else(|| self.started.borrow_mut().pop_first());
        let Some((_, raw_fd)) = oldest else { return false };
        // SAFETY: a descriptor in the table is open: its owner removes it (dropping its
        // `Waiting`) before closing it. shutdown(2) does not close it; the owner's read sees EOF.
        unsafe { libc::shutdown(raw_fd, libc::SHUT_RDWR) };
        self.count(|counts| counts.evicted += 1);
        true
    }

    /// Connections waiting for their CONNECT now.
    pub fn waiting(&self) -> usize {
        self.silent.borrow().len() + self.started.borrow().len()
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

/// Whether the connection's first bytes are already in its socket (a peek: nothing is
/// consumed, the connection's reader gets them).
pub fn has_bytes_waiting(raw_fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte buffer we own; recv(2) with MSG_PEEK | MSG_DONTWAIT neither blocks
    // nor consumes, and an invalid descriptor only makes it fail.
    let peeked =
        unsafe { libc::recv(raw_fd, (&raw mut byte).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    peeked > 0
}

/// A connection's place in the waiting table; leaves it when dropped.
#[derive(Debug)]
pub struct Waiting {
    admission: Rc<Admission>,
    ticket: u64,
}

impl Waiting {
    /// The connection has sent its first bytes: it is evicted only after every silent one.
    pub fn started(&self) {
        if let Some(raw_fd) = self.admission.silent.borrow_mut().remove(&self.ticket) {
            self.admission.started.borrow_mut().insert(self.ticket, raw_fd);
        }
    }

    /// Whether this connection was shut down to make room for a newer one. Such a connection
    /// is done with, even if its CONNECT was read: its socket can no longer answer.
    pub fn was_evicted(&self) -> bool {
        let ticket = &self.ticket;
        !self.admission.silent.borrow().contains_key(ticket)
            && !self.admission.started.borrow().contains_key(ticket)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.admission.silent.borrow_mut().remove(&self.ticket);
        self.admission.started.borrow_mut().remove(&self.ticket);
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

    #[test]
    fn bytes_in_a_socket_are_seen_without_being_taken() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        use std::os::fd::AsRawFd;
        assert!(!has_bytes_waiting(accepted.as_raw_fd()));
        client.write_all(b"\x10").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !has_bytes_waiting(accepted.as_raw_fd()) {
            assert!(std::time::Instant::now() < deadline, "the byte never arrived");
        }
        let mut byte = [0u8; 1];
        assert_eq!(accepted.read(&mut byte).unwrap(), 1, "still there for the reader");
        assert_eq!(byte[0], 0x10);
    }

    #[test]
    fn silent_connections_go_before_one_that_started_its_connect() {
        let admission = Admission::new(2);
        // Descriptors that are not sockets: shutdown(2) fails on them harmlessly.
        let (older, newer) = (admission.enter(-1), admission.enter(-1));
        older.started();
        let newest = admission.enter(-1);
        assert!(!older.was_evicted() && newer.was_evicted() && !newest.was_evicted());
        newest.started();
        assert!(admission.evict_oldest());
        assert!(older.was_evicted() && !newest.was_evicted(), "the oldest of the started ones next");
        assert!(admission.evict_oldest() && !admission.evict_oldest());
    }
}

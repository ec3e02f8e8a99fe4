//! # push — the per-shard outbox and HTTP sender of push notifications
//!
//! A shard pushes the events it owns (a message status change, a device going online…) to an
//! application as `POST {url}` with a JSON envelope (spec §2.10, the rule engine's
//! HTTP_FORWARDING action). [`Pusher`] lives in an `Rc` on one shard; [`Pusher::enqueue`] never
//! waits and never fails, so a push can never hold up a device session.
//!
//! ## Layout and flow
//! - [`url`]: [`parse_url`] — `http://host[:port][/path][?query]` only.
//! - `outbox`: the pure, bounded per-target queues (unit-tested without I/O).
//! - `sender`: one glommio task per target that POSTs the head push over a kept-alive hyper
//!   client connection (through [`crate::hyper_io::HyperIo`], TCP_NODELAY set) and retries it
//!   with back-off.
//!
//! `enqueue` appends to the target's queue and wakes its sender, starting the sender task
//! (`glommio::spawn_local`, detached) when the target has none.
//!
//! ## Decisions
//! - **One queue per target** (URL + token), so a receiver that is down delays only its own
//!   pushes. Order within a target is kept: a failed push is retried before any later one.
//! - **Bound**: all queues of a shard together hold at most `outbox_max` pushes. When full, the
//!   **globally oldest** push (of any target; every push carries a shard-wide sequence number)
//!   is dropped and counted in [`PushStats::dropped`]. The push being sent stays queued (and
//!   counted) until its answer comes; if it is dropped meanwhile it may still arrive, but counts
//!   only as dropped.
//! - **Delivery is at least once**: a 2xx answer removes the push. Anything else — no address,
//!   refused connection, non-2xx, no complete answer within `request_timeout` (one timer for
//!   resolve + connect + request + answer) — is a failed attempt: counted, the connection dropped
//!   whole, then the same push is retried after a back-off of `backoff_min` doubling up to
//!   `backoff_max` (no jitter; reset by a success). A kept-alive connection the receiver closed
//!   meanwhile is replaced once without counting a failure.
//! - **Token**: when a target has one, every request carries it as `X-Push-Token: {token}`.
//!   This is ringiot's choice: the spec leaves the signing of pushed requests unconfirmed.
//!   [`PushTarget`]'s `Debug` redacts it, and logs name only the receiver's host and port.
//! - **Idle senders exit** after 30 s with an empty queue, closing their connection; the next
//!   `enqueue` starts a new one. A waiting sender costs a parked task and one timer.
//! - **Unusable targets** (a URL [`parse_url`] refuses, a token that is no valid header value):
//!   their pushes are dropped (counted) when the sender starts; the rule engine should check
//!   URLs with [`parse_url`] when an action is created.
//! - **Host names** resolve on glommio's blocking thread pool at each new connection; IP
//!   literals need no lookup.
//! - Senders hold only a `Weak<Pusher>`: [`Pusher::close`] or dropping the last `Rc` stops them
//!   at their next step (after the request in flight or the back-off sleep).
//!
//! ## Invariants
//! - `stats().queued <= outbox_max`; pushes enqueued = sent + dropped + queued.
//! - A non-empty queue always has a live sender task (a sender retires only with an empty queue).
//! - Nothing here blocks the shard: no lock, no blocking syscall (DNS goes to the blocking pool).
//! - No receiver behaviour panics a sender: every answer, error or silence is an outcome.

mod outbox;
mod sender;
pub mod url;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use outbox::{Outbox, QueuedPush};
pub use url::{parse_url, ParsedUrl};

/// The header that carries a target's token (lower-case as HTTP/1 headers are compared).
pub const PUSH_TOKEN_HEADER: &str = "x-push-token";

/// Where pushes go: an `http://` URL and an optional token sent as `X-Push-Token`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PushTarget {
    pub url: String,
    pub token: Option<String>,
}

impl fmt::Debug for PushTarget {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PushTarget")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Limits and timings of a shard's pusher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// Pushes queued on the shard, all targets together; the oldest is dropped beyond it.
    pub outbox_max: usize,
    /// Time allowed for one attempt: resolve, connect, request and the whole answer.
    pub request_timeout: Duration,
    /// Wait after the first failed attempt of a push.
    pub backoff_min: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            outbox_max: 10_000,
            request_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Counters of one shard's pusher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushStats {
    /// Pushes a receiver answered with 2xx.
    pub sent: u64,
    /// Attempts that failed (each retried push counts once per failure).
    pub failed_attempts: u64,
    /// Pushes discarded undelivered: outbox full, unusable target, enqueued after or cleared by
    /// `close`.
    pub dropped: u64,
    /// Pushes waiting or in flight now.
    pub queued: usize,
}

/// A shard's outbox and its sender tasks. `!Send`: it lives on one glommio executor, and
/// [`Pusher::enqueue`] must be called there.
pub struct Pusher {
    config: PushConfig,
    state: RefCell<PusherState>,
    sent: Cell<u64>,
    failed_attempts: Cell<u64>,
    dropped: Cell<u64>,
    closed: Cell<bool>,
}

struct PusherState {
    outbox: Outbox<Rc<PushTarget>>,
    /// Targets with a running sender task, and the waker of the ones waiting for a push.
    senders: HashMap<Rc<PushTarget>, Option<Waker>>,
}

impl fmt::Debug for Pusher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Pusher")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .field("senders", &self.state.borrow().senders.len())
            .field("closed", &self.closed.get())
            .finish()
    }
}

impl Pusher {
    pub fn new(config: PushConfig) -> Rc<Pusher> {
        let outbox = Outbox::new(config.outbox_max);
        Rc::new(Pusher {
            config,
            state: RefCell::new(PusherState { outbox, senders: HashMap::new() }),
            sent: Cell::new(0),
            failed_attempts: Cell::new(0),
            dropped: Cell::new(0),
            closed: Cell::new(false),
        })
    }

    /// Queues one push (never waits, never fails): when the shard's outbox holds `outbox_max`,
    /// the oldest queued push (of any target) is dropped and counted in `dropped`. Starts the
    /// target's sender task on first use.
    ///
    /// # Panics
    /// Outside a glommio executor (the sender task is started with `glommio::spawn_local`).
    pub fn enqueue(self: &Rc<Self>, target: &PushTarget, body: Vec<u8>) {
        if self.closed.get() {
            self.count_dropped(1);
            return;
        }
        let mut state = self.state.borrow_mut();
        let known = state.senders.get_key_value(target).map(|(key, _)| key.clone());
        let key = known.clone().unwrap_or_else(|| Rc::new(target.clone()));
        let dropped = state.outbox.push(key.clone(), Bytes::from(body));
        self.count_dropped(dropped);
        if known.is_none() {
            state.senders.insert(key.clone(), None);
            drop(state);
            glommio::spawn_local(sender::run(Rc::downgrade(self), key)).detach();
        } else if let Some(waker) = state.senders.get_mut(target).and_then(Option::take) {
            drop(state);
            waker.wake();
        }
    }

    pub fn stats(&self) -> PushStats {
        PushStats {
            sent: self.sent.get(),
            failed_attempts: self.failed_attempts.get(),
            dropped: self.dropped.get(),
            queued: self.state.borrow().outbox.len(),
        }
    }

    /// Stops every sender task at its next step (for shutdown); queued pushes are dropped, and
    /// so is anything enqueued afterwards.
    pub fn close(&self) {
        self.closed.set(true);
        let mut state = self.state.borrow_mut();
        let cleared = state.outbox.clear();
        let wakers: Vec<Waker> = state.senders.drain().filter_map(|(_, waker)| waker).collect();
        drop(state);
        self.count_dropped(cleared);
        wakers.into_iter().for_each(Waker::wake);
    }

    fn config(&self) -> &PushConfig {
        &self.config
    }

    fn is_closed(&self) -> bool {
        self.closed.get()
    }

    fn count_dropped(&self, pushes: usize) {
        self.dropped.set(self.dropped.get() + pushes as u64);
    }

    fn count_failed_attempt(&self) {
        self.failed_attempts.set(self.failed_attempts.get() + 1);
    }

    /// The target's head push, or `Pending` with the sender's waker stored for `enqueue`.
    /// `Ready(None)`: the sender must stop.
    fn poll_next_push(&self, target: &PushTarget, cx: &mut Context<'_>) -> Poll<Option<QueuedPush>> {
        if self.closed.get() {
            return Poll::Ready(None);
        }
        let mut state = self.state.borrow_mut();
        if let Some(push) = state.outbox.front(target) {
            return Poll::Ready(Some(push));
        }
        match state.senders.get_mut(target) {
            Some(waker) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            None => Poll::Ready(None),
        }
    }

    /// Removes the delivered push `sequence` and counts it as sent, unless it was dropped while
    /// in flight.
    fn complete(&self, target: &PushTarget, sequence: u64) {
        if self.state.borrow_mut().outbox.complete(target, sequence) {
            self.sent.set(self.sent.get() + 1);
        }
    }

    /// Gives up the target's sender slot if its queue is empty; the caller then exits.
    fn retire_if_idle(&self, target: &PushTarget) -> bool {
        let mut state = self.state.borrow_mut();
        let idle = state.outbox.front(target).is_none();
        if idle {
            state.senders.remove(target);
        }
        idle
    }

    /// Drops every push of a target that cannot be reached and gives up its sender slot.
    fn discard_target(&self, target: &PushTarget) -> usize {
        let mut state = self.state.borrow_mut();
        let dropped = state.outbox.remove_queue(target);
        state.senders.remove(target);
        drop(state);
        self.count_dropped(dropped);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_token() {
        let target = PushTarget { url: "http://app/cb".into(), token: Some("abc123".into()) };
        let printed = format!("{target:?}");
        assert!(!printed.contains("abc123"), "{printed}");
        assert!(printed.contains("<redacted>") && printed.contains("http://app/cb"), "{printed}");
        assert!(format!("{:?}", PushTarget { token: None, ..target }).contains("None"));
    }

    #[test]
    fn default_config_has_the_documented_values() {
        let config = PushConfig::default();
        assert_eq!(config.outbox_max, 10_000);
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        assert_eq!(config.backoff_min, Duration::from_millis(100));
        assert_eq!(config.backoff_max, Duration::from_secs(30));
    }
}

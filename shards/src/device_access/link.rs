//! The downlink side of a live session, shared by its reader loop and by the shard (which
//! publishes commands and property calls to the device). Everything here is synchronous: a
//! borrow never spans an await, so the `RefCell`s are never contended.
//!
//! Invariants:
//! - Packets reach the writer only through [`SessionLink::send`], which never waits: a full
//!   queue means the device does not read, and the connection is ended.
//! - After [`SessionLink::close`] nothing more is queued and the descriptor is never touched
//!   again (it may be closed and reused by then).

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;

use bytes::{Bytes, BytesMut};
use glommio::channels::local_channel::LocalSender;
use protocol::mqtt::codec::{self, MqttVersion, Publish};

use super::close::CloseReason;
use super::downlink::{self, Downlink, DownlinkError};

/// Encoded packets waiting for the writer, at most. The queue holds nothing while idle (it
/// grows with a burst), and a gateway gets bursts: every call to any of its sub-devices is
/// published on its connection (regression: 200 concurrent commands to a gateway's
/// sub-devices filled a 32-packet queue and cut the gateway off). Nothing waits for room: a
/// device that lets the queue fill — in packets or in [`OUTBOUND_BYTES_MAX`] — is not
/// reading, and is disconnected (a write without progress for 30 s is caught too).
pub const OUTBOUND_PACKETS_MAX: usize = 1024;
/// Encoded bytes waiting for the writer, at most: two of the largest packets.
pub const OUTBOUND_BYTES_MAX: usize = 2 * 1024 * 1024 + 64 * 1024;

/// Why a publish did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    #[error("the device is not subscribed to {0}")]
    NotSubscribed(String),
    #[error(transparent)]
    Full(DownlinkError),
    /// The device does not read (its queue is full) or the connection is closing; the
    /// connection is being ended.
    #[error("the device does not read its connection, or it is closing")]
    NotReading,
}

#[derive(Debug)]
pub struct SessionLink {
    device_id: String,
    version: MqttVersion,
    raw_fd: RawFd,
    subscriptions: RefCell<Vec<(String, u8)>>,
    downlink: RefCell<Downlink>,
    outbound: RefCell<Option<LocalSender<Bytes>>>,
    /// Bytes in `outbound` (the writer subtracts what it takes, [`SessionLink::taken`]).
    queued_bytes: Cell<usize>,
    closed: Cell<bool>,
    /// Why the socket was shut down from outside the reader, first reason first.
    shut_down_by: Cell<Option<ShutDownBy>>,
}

/// Why a session's socket was shut down from outside its reader (which only sees EOF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutDownBy {
    TakeOver,
    DeviceDeleted,
    CredentialsChanged,
    Frozen,
    /// The outbound queue was full: the device does not read.
    QueueFull,
    /// A write made no progress for the write timeout.
    WriteStalled,
    /// A write found the connection reset or closed by the device.
    PeerGone,
    /// A write failed otherwise.
    WriteFailed,
}

impl ShutDownBy {
    pub fn reason(self) -> CloseReason {
        match self {
            ShutDownBy::TakeOver => CloseReason::TakenOver,
            ShutDownBy::DeviceDeleted => CloseReason::DeviceDeleted,
            ShutDownBy::CredentialsChanged => CloseReason::CredentialsChanged,
            ShutDownBy::Frozen => CloseReason::Frozen,
            ShutDownBy::QueueFull => CloseReason::Stalled(format!(
                "{OUTBOUND_PACKETS_MAX} packets or {OUTBOUND_BYTES_MAX} bytes queued"
            )),
            ShutDownBy::WriteStalled => CloseReason::Stalled("a write made no progress for 30 s".into()),
            ShutDownBy::PeerGone => CloseReason::HungUp,
            ShutDownBy::WriteFailed => CloseReason::Failed("writing to the device failed".into()),
        }
    }
}

impl SessionLink {
    pub fn new(device_id: &str, version: MqttVersion, raw_fd: RawFd, outbound: LocalSender<Bytes>) -> Self {
        SessionLink {
            device_id: device_id.to_owned(),
            version,
            raw_fd,
            subscriptions: RefCell::new(Vec::new()),
            downlink: RefCell::new(Downlink::default()),
            outbound: RefCell::new(Some(outbound)),
            queued_bytes: Cell::new(0),
            closed: Cell::new(false),
            shut_down_by: Cell::new(None),
        }
    }

    /// Queues a last packet (a v5 DISCONNECT) if there is room, and nothing else: the session
    /// is ending for its own reason, which a full queue must not overwrite.
    pub fn send_farewell(&self, packet: BytesMut) {
        if let Some(queue) = self.outbound.borrow().as_ref() {
            if queue.len() < OUTBOUND_PACKETS_MAX {
                self.queued_bytes.set(self.queued_bytes.get() + packet.len());
                let _ = queue.try_send(packet.freeze());
            }
        }
    }

    /// The writer took a packet of `bytes` off the queue.
    pub fn taken(&self, bytes: usize) {
        self.queued_bytes.set(self.queued_bytes.get().saturating_sub(bytes));
    }

    /// Queues an encoded packet for the writer without waiting. A full queue (or a writer that
    /// failed) ends the connection: the socket is shut down and the reader sees EOF.
    pub fn send(&self, packet: BytesMut) -> Result<(), DeliverError> {
        let outbound = self.outbound.borrow();
        let bytes = packet.len();
        let room = self.queued_bytes.get() + bytes <= OUTBOUND_BYTES_MAX;
        let sent = room
            && outbound.as_ref().is_some_and(|queue| {
                queue.len() < OUTBOUND_PACKETS_MAX && queue.try_send(packet.freeze()).is_ok()
            });
        drop(outbound);
        if sent {
            self.queued_bytes.set(self.queued_bytes.get() + bytes);
            Ok(())
        } else {
            self.shut_down(ShutDownBy::QueueFull);
            Err(DeliverError::NotReading)
        }
    }

    /// Publishes at the QoS the device's subscriptions give the topic (explicit, or the
    /// implicit QoS 0 system subscription); `Ok(qos)` once written or queued in the window.
    pub fn deliver(&self, topic_name: String, payload: Bytes) -> Result<u8, DeliverError> {
        self.deliver_tagged(topic_name, payload, None, false, true)
    }

    /// Publishes a synchronous call: like [`SessionLink::deliver`], but a QoS 1 publish that
    /// would wait for room in the window is refused ([`DeliverError::Full`]).
    pub fn deliver_now(&self, topic_name: String, payload: Bytes) -> Result<u8, DeliverError> {
        self.deliver_tagged(topic_name, payload, None, false, false)
    }

    /// The QoS a publish on `topic_name` would go out at, `None` if the device is not
    /// subscribed to it.
    pub fn delivery_qos(&self, topic_name: &str) -> Option<u8> {
        downlink::delivery_qos(&self.subscriptions.borrow(), &self.device_id, topic_name)
    }

    /// [`SessionLink::deliver`] with a tag that [`SessionLink::acknowledge`] hands back when the
    /// device acknowledges a QoS 1 publish. `at_least_qos1` raises a QoS 0 subscription to 1 (a
    /// message already sent at QoS 1 keeps its guarantee).
    pub fn deliver_tagged(
        &self,
        topic_name: String,
        payload: Bytes,
        tag: Option<String>,
        at_least_qos1: bool,
        may_wait: bool,
    ) -> Result<u8, DeliverError> {
        let qos =
            self.delivery_qos(&topic_name).ok_or_else(|| DeliverError::NotSubscribed(topic_name.clone()))?;
        let qos = if at_least_qos1 { qos.max(1) } else { qos };
        let ready = self
            .downlink
            .borrow_mut()
            .publish_tagged(topic_name, payload, qos, tag, crate::now_unix_ms() as u64, may_wait)
            .map_err(DeliverError::Full)?;
        if let Some(publish) = ready {
            self.write_publish(&publish)?;
        }
        Ok(qos)
    }

    /// A PUBACK: frees its window slot and writes the next queued publish, if any. Returns the
    /// acknowledged publish's tag (even when writing the next one failed) and the write's result.
    pub fn acknowledge(&self, packet_id: u16) -> (Option<String>, Result<(), DeliverError>) {
        let acknowledged = self.downlink.borrow_mut().acknowledge(packet_id, crate::now_unix_ms() as u64);
        let written = match acknowledged.next {
            Some(publish) => self.write_publish(&publish),
            None => Ok(()),
        };
        (acknowledged.tag, written)
    }

    /// Resends the unacknowledged QoS 1 publishes that are due (DUP set); `true` while some may
    /// still be resent later.
    pub fn resend_due(&self, now_ms: u64) -> bool {
        let due = self.downlink.borrow_mut().due_resends(now_ms);
        for publish in &due {
            if self.write_publish(publish).is_err() {
                return false;
            }
        }
        self.downlink.borrow().has_resends_left()
    }

    /// Adds or replaces a subscription; `false` (nothing changed) when the connection already
    /// holds `max` other filters.
    pub fn subscribe(&self, filter: String, qos: u8, max: usize) -> bool {
        let mut subscriptions = self.subscriptions.borrow_mut();
        let known = subscriptions.iter().any(|(f, _)| *f == filter);
        if !known && subscriptions.len() >= max {
            return false;
        }
        subscriptions.retain(|(f, _)| *f != filter);
        subscriptions.push((filter, qos));
        true
    }

    pub fn unsubscribe(&self, filters: &[String]) {
        self.subscriptions.borrow_mut().retain(|(filter, _)| !filters.contains(filter));
    }

    fn write_publish(&self, publish: &Publish) -> Result<(), DeliverError> {
        let mut out = BytesMut::new();
        codec::write_publish(self.version, publish, &mut out);
        self.send(out)
    }

    /// Ends the connection from outside (takeover, device deleted, device not reading): the
    /// reader sees EOF, and [`SessionLink::shut_down_by`] says why. Does nothing once the link
    /// is closed.
    pub fn shut_down(&self, by: ShutDownBy) {
        if self.shut_down_by.get().is_none() {
            self.shut_down_by.set(Some(by));
        }
        if !self.closed.get() {
            // SAFETY: until `close`, the session's reader owns the descriptor, so it is open;
            // shutdown(2) does not close it.
            unsafe { libc::shutdown(self.raw_fd, libc::SHUT_RDWR) };
        }
    }

    /// The first reason the socket was shut down from outside, if it was.
    pub fn shut_down_by(&self) -> Option<ShutDownBy> {
        self.shut_down_by.get()
    }

    /// No more packets: the writer drains what is queued and stops. Called by the session
    /// before it closes the descriptor.
    pub fn close(&self) {
        self.closed.set(true);
        self.outbound.borrow_mut().take();
    }
}

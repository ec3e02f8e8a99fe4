//! Downlink messages (spec §1.5 "Message down", §1.6, §2.7, DESIGN.md §4 and §6) on the
//! device's home shard: accepted durably, delivered at once to an online device or cached for
//! an offline one, and followed through PENDING → DELIVERED / FAILED / TIMEOUT.
//!
//! - [`history`]: the pure part — the 20-entry history per device and the TTL index.
//! - This module: the shell — logging every change before it is answered, delivering through
//!   the device's session link, the PUBACK and TTL bookkeeping, and status notifications.
//!
//! Delivery guarantees, and how they are kept:
//! - **QoS 0** (the implicit system subscription, or a QoS 0 SUBSCRIBE): the DELIVERED status is
//!   made durable *before* the publish is written, so a crash can lose a delivery but never
//!   repeat one (at most once). If the connection is found gone at the write, the message goes
//!   back to PENDING.
//! - **QoS 1**: the message stays PENDING until the device's PUBACK, which makes DELIVERED
//!   durable; unacknowledged it is resent with DUP every 2 s, 3 times (spec §1.6), and again
//!   after the next login, still at QoS 1 even on the implicit system subscription (at least
//!   once: it never falls back to QoS 0; devices de-duplicate by `id`). A message with
//!   `ttl` 0 waits at most [`history::NO_CACHE_ACK_WINDOW_MS`] for its PUBACK.
//! - The 201 of CreateMessage is sent only after the accepted message is durable. For a QoS 1
//!   delivery it waits up to [`QOS1_ACK_WAIT`] for the PUBACK and answers with the status then.
//!
//! Decisions where the spec is silent:
//! - Cached messages go out right after CONNACK in acceptance order; one for a custom topic
//!   waits until the device subscribes to it (or its TTL runs out). A message created while the
//!   device's cached messages are still going out is queued behind them (answered PENDING).
//! - An online device not subscribed to the message's topic: FAILED with `IOTDA.014112`.
//!   Offline with `ttl` 0: FAILED with `IOTDA.014016`. TTL run out: TIMEOUT.
//! - The 21st message replaces the oldest whatever its status. A PENDING message evicted that
//!   way is never delivered: its push notification reports FAILED with
//!   [`EVICTED_CODE`] (ringiot's own code), and it leaves the history.
//! - A duplicate `message_id` (among the device's kept messages) is refused.

pub mod history;
mod via_gateway;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalSender};
use protocol::mqtt::topic;

use crate::device_access::link::SessionLink;
use crate::messages::{Reply, ShardError};
use crate::registry::records::{MessageKey, MessageRecord, MessageStatus, RegistryRecord};
use crate::registry::Shard;
use history::History;

/// How long CreateMessage waits for a QoS 1 PUBACK before answering PENDING.
pub const QOS1_ACK_WAIT: Duration = Duration::from_secs(2);
/// How often the shard looks for expired messages and due QoS 1 resends.
pub const TICK: Duration = Duration::from_millis(500);
/// The error code of a PENDING message evicted by a newer one (ringiot's own).
pub const EVICTED_CODE: &str = "IOTDA.014199";
/// Offline and not cached (spec §2.7).
pub const OFFLINE_CODE: &str = "IOTDA.014016";
/// Not subscribed to the message's topic (spec §2.7).
pub const NOT_SUBSCRIBED_CODE: &str = "IOTDA.014112";

/// CreateMessage as the front desk checked it (spec §2.7), on its way to the home shard.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub project_id: String,
    pub device_id: String,
    /// Generated on the home shard when absent.
    pub message_id: Option<String>,
    pub name: Option<String>,
    pub message_json: String,
    pub encoding: String,
    pub payload_format: String,
    pub topic: Option<String>,
    pub topic_full_name: Option<String>,
    pub properties_json: Option<String>,
    pub ttl_minutes: u32,
}

/// Status transitions since start, for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MessageCounts {
    pub accepted: u64,
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
    pub timeout: u64,
    pub evicted: u64,
}

/// Per-shard message state, kept in [`Shard`].
#[derive(Debug, Default)]
pub struct MailboxState {
    history: RefCell<History>,
    /// Messages written at QoS 1 and not acknowledged yet, with the session they went out on.
    awaiting_ack: RefCell<HashMap<(String, String), u64>>,
    /// CreateMessage calls waiting for a QoS 1 PUBACK.
    ack_waiters: RefCell<HashMap<(String, String), LocalSender<()>>>,
    /// Devices whose cached messages are going out, and whether another pass was asked for.
    delivering: RefCell<HashMap<String, bool>>,
    /// Devices with QoS 1 publishes that may be due for a resend.
    resending: RefCell<HashSet<String>>,
    counts: Cell<MessageCounts>,
    ticking: Cell<bool>,
}

impl MailboxState {
    pub(crate) fn recovered(messages: Vec<MessageRecord>) -> MailboxState {
        MailboxState { history: RefCell::new(History::recovered(messages)), ..Default::default() }
    }

    pub fn counts(&self) -> MessageCounts {
        self.counts.get()
    }

    /// Messages kept and, of them, pending.
    pub fn kept(&self) -> (usize, usize) {
        let history = self.history.borrow();
        (history.len(), history.pending_count())
    }

    fn count(&self, change: impl FnOnce(&mut MessageCounts)) {
        let mut counts = self.counts.get();
        change(&mut counts);
        self.counts.set(counts);
    }
}

/// The topic and bytes a message is published with (spec §1.5 "Message down").
pub fn wire(message: &MessageRecord) -> (String, Bytes) {
    let topic_name = match (&message.topic, &message.topic_full_name) {
        (Some(suffix), _) => topic::user_topic(&message.device_id, suffix),
        (None, Some(full)) => full.clone(),
        (None, None) => topic::messages_down_topic(&message.device_id),
    };
    let text = json_string(&message.message_json);
    let payload = if message.encoding == "base64" {
        // Checked at acceptance; an undecodable one (impossible) goes out empty.
        protocol::base64::decode(text.as_deref().unwrap_or_default()).unwrap_or_default()
    } else if message.payload_format == "raw" {
        match text {
            Some(text) => text.into_bytes(),
            None => message.message_json.clone().into_bytes(),
        }
    } else {
        #[derive(serde::Serialize)]
        struct Standard<'a> {
            name: Option<&'a str>,
            id: &'a str,
            content: &'a str,
        }
        // `content` is a string (spec §1.5); a JSON value goes in as its JSON text, the one
        // form both the C and the Python device SDKs recognise.
        let content = text.as_deref().unwrap_or(&message.message_json);
        protocol::json::to_vec(&Standard { name: message.name.as_deref(), id: &message.message_id, content })
    };
    (topic_name, Bytes::from(payload))
}

/// The string a JSON text holds, if it is a JSON string.
fn json_string(json: &str) -> Option<String> {
    if !json.starts_with('"') {
        return None;
    }
    protocol::json::from_bytes::<String>(json.as_bytes()).ok()
}

fn finished(message: &MessageRecord, status: MessageStatus, error: Option<(&str, String)>) -> MessageRecord {
    let mut next = message.clone();
    next.status = status;
    next.finished_ms = status.is_final().then(crate::now_unix_ms);
    (next.error_code, next.error_msg) = match error {
        Some((code, text)) => (Some(code.to_owned()), Some(text)),
        None => (None, None),
    };
    next
}

impl Shard {
    /// CreateMessage on the device's home shard (see the module doc).
    pub(crate) async fn create_message(self: &Rc<Self>, new: NewMessage) -> Reply {
        if !self.has_device(&new.project_id, &new.device_id) {
            return Reply::Failed(ShardError::DeviceNotFound);
        }
        if self.is_frozen(&new.device_id) {
            // Refused rather than cached: a frozen device may stay frozen for ever.
            return Reply::Failed(ShardError::DeviceFrozen);
        }
        let message_id = new.message_id.unwrap_or_else(|| self.calls.next_request_id());
        if self.mailbox.history.borrow().get(&new.device_id, &message_id).is_some() {
            return Reply::Failed(ShardError::Invalid(protocol::error::ValidationError::new(
                "message_id",
                format!("'{message_id}' is already a message of this device"),
            )));
        }
        let seq = self.mailbox.history.borrow_mut().next_seq();
        let pending = MessageRecord {
            device_id: new.device_id.clone(),
            message_id,
            seq,
            name: new.name,
            message_json: new.message_json,
            encoding: new.encoding,
            payload_format: new.payload_format,
            topic: new.topic,
            topic_full_name: new.topic_full_name,
            properties_json: new.properties_json,
            ttl_minutes: new.ttl_minutes,
            status: MessageStatus::Pending,
            error_code: None,
            error_msg: None,
            created_ms: crate::now_unix_ms(),
            finished_ms: None,
        };
        if let Some(gateway_id) = self.gateway_of(&new.device_id) {
            return self.create_sub_device_message(gateway_id, pending).await;
        }
        let Some((session_id, link)) = self.session_with_id(&new.device_id) else {
            let record = if pending.ttl_minutes == 0 {
                let text = "the device is offline and the message has no cache time (ttl 0)".to_owned();
                finished(&pending, MessageStatus::Failed, Some((OFFLINE_CODE, text)))
            } else {
                pending
            };
            return self.accept(record).await;
        };
        let (topic_name, payload) = wire(&pending);
        let qos = link.delivery_qos(&topic_name);
        if qos.is_some() && self.mailbox.delivering.borrow().contains_key(&new.device_id) {
            // The device's cached messages are still going out: this one queues behind them.
            let reply = self.accept(pending).await;
            self.deliver_pending(&new.device_id);
            return reply;
        }
        match qos {
            None => {
                let text = format!("the device is not subscribed to {topic_name}");
                self.accept(finished(&pending, MessageStatus::Failed, Some((NOT_SUBSCRIBED_CODE, text))))
                    .await
            }
            Some(0) => {
                let delivered = finished(&pending, MessageStatus::Delivered, None);
                if let failed @ Reply::Failed(_) = self.accept(delivered.clone()).await {
                    return failed;
                }
                if link.deliver(topic_name, payload).is_err() {
                    // The connection went away: the message waits for the next login (or a
                    // session that logged in meanwhile).
                    self.change_message(&delivered, pending.clone()).await;
                    self.deliver_pending(&pending.device_id);
                }
                self.current_message(&pending)
            }
            Some(_) => {
                if let failed @ Reply::Failed(_) = self.accept(pending.clone()).await {
                    return failed;
                }
                let key = (pending.device_id.clone(), pending.message_id.clone());
                let (sender, receiver) = local_channel::new_bounded(1);
                self.mailbox.ack_waiters.borrow_mut().insert(key.clone(), sender);
                if self.deliver_qos1(&link, session_id, &pending, topic_name, payload) {
                    futures_lite::future::or(
                        async {
                            let _ = receiver.recv().await;
                        },
                        glommio::timer::sleep(QOS1_ACK_WAIT),
                    )
                    .await;
                }
                self.mailbox.ack_waiters.borrow_mut().remove(&key);
                self.current_message(&pending)
            }
        }
    }

    /// The device's messages, oldest first.
    pub(crate) fn list_messages(&self, project_id: &str, device_id: &str) -> Reply {
        if !self.has_device(project_id, device_id) {
            return Reply::Failed(ShardError::DeviceNotFound);
        }
        Reply::Messages(self.mailbox.history.borrow().list(device_id))
    }

    pub(crate) fn show_message(&self, project_id: &str, device_id: &str, message_id: &str) -> Reply {
        if !self.has_device(project_id, device_id) {
            return Reply::Failed(ShardError::DeviceNotFound);
        }
        match self.mailbox.history.borrow().get(device_id, message_id) {
            Some(message) => Reply::Message(Box::new(message.clone())),
            None => Reply::Failed(ShardError::MessageNotFound),
        }
    }

    fn current_message(&self, message: &MessageRecord) -> Reply {
        let history = self.mailbox.history.borrow();
        let current = history.get(&message.device_id, &message.message_id).cloned();
        Reply::Message(Box::new(current.unwrap_or_else(|| message.clone())))
    }

    /// Adds a new message to the history and makes it durable (with the eviction it caused).
    async fn accept(self: &Rc<Self>, message: MessageRecord) -> Reply {
        let evicted = self.mailbox.history.borrow_mut().insert(message.clone());
        let appended = self.persist(RegistryRecord::MessagePut(Box::new(message.clone())));
        let removed = evicted.as_ref().map(|evicted| {
            self.persist(RegistryRecord::MessageDelete(MessageKey {
                device_id: evicted.device_id.clone(),
                message_id: evicted.message_id.clone(),
            }))
        });
        let (appended, removed) = match removed {
            Some(removed) => futures_lite::future::zip(appended, removed).await,
            None => (appended.await, Ok(())),
        };
        if let Err(error) = appended.and(removed) {
            // Never answered 201: forget it again (an eviction it caused stays).
            self.mailbox.history.borrow_mut().remove(&message.device_id, &message.message_id);
            return Reply::Failed(error);
        }
        self.mailbox.count(|c| c.accepted += 1);
        if let Some(evicted) = evicted {
            self.mailbox.count(|c| c.evicted += 1);
            self.mailbox
                .awaiting_ack
                .borrow_mut()
                .remove(&(evicted.device_id.clone(), evicted.message_id.clone()));
            if evicted.status == MessageStatus::Pending {
                let text = "evicted by a newer message before it could be delivered".to_owned();
                self.message_changed(&finished(&evicted, MessageStatus::Failed, Some((EVICTED_CODE, text))));
            }
        }
        self.message_changed(&message);
        Reply::Message(Box::new(message))
    }

    /// Moves a kept message from `from` to `to`, durably. `false` if it is not kept any more,
    /// has moved on meanwhile, or the log refused the change (then memory is as before).
    async fn change_message(self: &Rc<Self>, from: &MessageRecord, to: MessageRecord) -> bool {
        {
            let mut history = self.mailbox.history.borrow_mut();
            if history.get(&from.device_id, &from.message_id) != Some(from) {
                return false;
            }
            history.update(to.clone());
        }
        if let Err(error) = self.persist(RegistryRecord::MessagePut(Box::new(to.clone()))).await {
            tracing::warn!(shard = self.id(), device_id = to.device_id, %error, "message status not persisted");
            let mut history = self.mailbox.history.borrow_mut();
            if history.get(&to.device_id, &to.message_id) == Some(&to) {
                history.update(from.clone());
            }
            return false;
        }
        if to.status.is_final() {
            self.mailbox.awaiting_ack.borrow_mut().remove(&(to.device_id.clone(), to.message_id.clone()));
        }
        self.message_changed(&to);
        true
    }

    /// Counts a status a message entered, and notifies it (spec §2.10).
    fn message_changed(self: &Rc<Self>, message: &MessageRecord) {
        self.mailbox.count(|c| match message.status {
            MessageStatus::Pending => c.pending += 1,
            MessageStatus::Delivered => c.delivered += 1,
            MessageStatus::Failed => c.failed += 1,
            MessageStatus::Timeout => c.timeout += 1,
        });
        self.notify_message_status(message);
    }

    /// Writes a message at QoS 1 tagged with its id; `true` if it went out (or waits in the
    /// session's window).
    fn deliver_qos1(
        self: &Rc<Self>,
        link: &SessionLink,
        session_id: u64,
        message: &MessageRecord,
        topic_name: String,
        payload: Bytes,
    ) -> bool {
        match link.deliver_tagged(topic_name, payload, Some(message.message_id.clone()), true, true) {
            Ok(_) => {
                let key = (message.device_id.clone(), message.message_id.clone());
                self.mailbox.awaiting_ack.borrow_mut().insert(key, session_id);
                self.mailbox.resending.borrow_mut().insert(message.device_id.clone());
                self.start_ticking();
                true
            }
            Err(error) => {
                tracing::debug!(shard = self.id(), device_id = message.device_id, %error, "message not delivered now");
                false
            }
        }
    }

    /// A QoS 1 publish went out to the device: the ticker (running since `start_serving`)
    /// resends it while unacknowledged.
    pub(crate) fn note_qos1_in_flight(&self, device_id: &str) {
        self.mailbox.resending.borrow_mut().insert(device_id.to_owned());
    }

    /// The device acknowledged the QoS 1 publish of a message.
    pub(crate) fn message_acknowledged(self: &Rc<Self>, device_id: &str, message_id: &str) {
        let key = (device_id.to_owned(), message_id.to_owned());
        self.mailbox.awaiting_ack.borrow_mut().remove(&key);
        let shard = self.clone();
        glommio::spawn_local(async move {
            let message = shard.mailbox.history.borrow().get(&key.0, &key.1).cloned();
            if let Some(message) = message.filter(|m| m.status == MessageStatus::Pending) {
                shard.change_message(&message, finished(&message, MessageStatus::Delivered, None)).await;
            }
            if let Some(waiter) = shard.mailbox.ack_waiters.borrow_mut().remove(&key) {
                let _ = waiter.try_send(());
            }
            // The ack freed room in the session's window: queued publishes went out (they may
            // need resends) and cached messages that found the window full can follow.
            shard.mailbox.resending.borrow_mut().insert(key.0.clone());
            shard.deliver_pending(&key.0);
        })
        .detach();
    }

    /// Sends the device's cached messages, in order, if it is online (after its CONNACK, and
    /// again after each SUBSCRIBE for messages on custom topics).
    pub(crate) fn deliver_pending(self: &Rc<Self>, device_id: &str) {
        if self.mailbox.history.borrow().pending_count_of(device_id) == 0 {
            return;
        }
        if let Some(again) = self.mailbox.delivering.borrow_mut().get_mut(device_id) {
            *again = true;
            return;
        }
        self.mailbox.delivering.borrow_mut().insert(device_id.to_owned(), false);
        let (shard, device_id) = (self.clone(), device_id.to_owned());
        glommio::spawn_local(async move {
            loop {
                shard.deliver_pending_once(&device_id).await;
                let mut delivering = shard.mailbox.delivering.borrow_mut();
                match delivering.get_mut(&device_id) {
                    Some(again) if *again => *again = false,
                    _ => {
                        delivering.remove(&device_id);
                        break;
                    }
                }
            }
        })
        .detach();
    }

    async fn deliver_pending_once(self: &Rc<Self>, device_id: &str) {
        if let Some(gateway_id) = self.gateway_of(device_id) {
            return self.deliver_pending_via_gateway(&gateway_id, device_id).await;
        }
        let pending = self.mailbox.history.borrow().pending(device_id);
        let Some((session_id, link)) = self.session_with_id(device_id) else { return };
        // QoS 0 messages are gathered and made DELIVERED together (one group commit rather
        // than one fsync after another), then written; a QoS 1 one flushes them first, so the
        // device still gets everything in acceptance order.
        let mut qos0 = Vec::new();
        for message in pending {
            let key = (message.device_id.clone(), message.message_id.clone());
            let attempted = self.mailbox.awaiting_ack.borrow().get(&key).copied();
            if attempted == Some(session_id) {
                continue;
            }
            let (topic_name, payload) = wire(&message);
            // A message once sent at QoS 1 keeps QoS 1 after a reconnect (at least once), even
            // on the implicit system subscription, rather than falling back to QoS 0.
            let qos = link.delivery_qos(&topic_name).map(|qos| if attempted.is_some() { 1 } else { qos });
            match qos {
                // A custom topic the device has not subscribed to (yet).
                None => continue,
                Some(0) => qos0.push((message, topic_name, payload)),
                Some(_) => {
                    if !self.deliver_qos0_batch(&link, std::mem::take(&mut qos0)).await
                        || !self.deliver_qos1(&link, session_id, &message, topic_name, payload)
                    {
                        return;
                    }
                }
            }
        }
        self.deliver_qos0_batch(&link, qos0).await;
    }

    /// Makes the messages DELIVERED durably, together, then writes them in order (at most
    /// once). `false` when the connection stopped taking them; the ones not written go back to
    /// PENDING.
    async fn deliver_qos0_batch(
        self: &Rc<Self>,
        link: &SessionLink,
        batch: Vec<(MessageRecord, String, Bytes)>,
    ) -> bool {
        if batch.is_empty() {
            return true;
        }
        let changes: Vec<_> = batch
            .iter()
            .map(|(message, _, _)| {
                let (shard, from) = (self.clone(), message.clone());
                let to = finished(message, MessageStatus::Delivered, None);
                glommio::spawn_local(
                    async move { shard.change_message(&from, to.clone()).await.then_some(to) },
                )
            })
            .collect();
        let mut delivered = Vec::with_capacity(changes.len());
        for change in changes {
            delivered.push(change.await);
        }
        let mut writing = true;
        for ((message, topic_name, payload), delivered) in batch.into_iter().zip(delivered) {
            let Some(delivered) = delivered else { continue };
            if writing && link.deliver(topic_name, payload).is_ok() {
                continue;
            }
            // The connection went away: this one and the rest wait for the next login.
            writing = false;
            self.change_message(&delivered, message).await;
        }
        writing
    }

    /// The device's live session and its id.
    fn session_with_id(&self, device_id: &str) -> Option<(u64, Rc<SessionLink>)> {
        self.live_session(device_id).map(|live| (live.session_id, live.link))
    }

    /// The device was deleted: its messages go with it (the device's delete record covers them
    /// in the log).
    pub(crate) fn forget_messages(&self, device_id: &str) {
        self.mailbox.history.borrow_mut().remove_device(device_id);
        self.mailbox.awaiting_ack.borrow_mut().retain(|(device, _), _| device != device_id);
        self.mailbox.resending.borrow_mut().remove(device_id);
    }

    /// Every kept message, for a snapshot.
    pub(crate) fn message_snapshot(&self, revision: u64) -> Vec<crate::log::LogRecord> {
        let history = self.mailbox.history.borrow();
        history.iter().map(|m| RegistryRecord::MessagePut(Box::new(m.clone())).encode(revision)).collect()
    }

    /// Starts the shard's ticker (TTL expiry, QoS 1 resends) once. It holds the shard weakly
    /// and ends with it.
    pub(crate) fn start_ticking(self: &Rc<Self>) {
        if self.mailbox.ticking.replace(true) {
            return;
        }
        let weak: Weak<Shard> = Rc::downgrade(self);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(TICK).await;
                let Some(shard) = weak.upgrade() else { return };
                if shard.is_closed() {
                    return;
                }
                shard.tick(crate::now_unix_ms()).await;
            }
        })
        .detach();
    }

    /// Expires cached messages whose TTL ran out at `now_ms`, and resends due QoS 1 publishes.
    pub(crate) async fn tick(self: &Rc<Self>, now_ms: i64) {
        let devices: Vec<String> = self.mailbox.resending.borrow().iter().cloned().collect();
        for device_id in devices {
            let keep = self.session_link(&device_id).is_some_and(|link| link.resend_due(now_ms as u64));
            if !keep {
                self.mailbox.resending.borrow_mut().remove(&device_id);
            }
        }
        let expired = self.mailbox.history.borrow().expired(now_ms);
        for (device_id, message_id) in expired {
            let message = self.mailbox.history.borrow().get(&device_id, &message_id).cloned();
            if let Some(message) = message.filter(|m| m.status == MessageStatus::Pending) {
                let text = format!("not delivered within its cache time of {} minutes", message.ttl_minutes);
                tracing::debug!(shard = self.id(), device_id, message_id, text, "message timed out");
                let timed_out = finished(&message, MessageStatus::Timeout, None);
                self.change_message(&message, timed_out).await;
            }
        }
    }
}

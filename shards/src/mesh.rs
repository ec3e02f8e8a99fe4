//! Request/reply between shards over glommio's `channel_mesh`.
//!
//! Two full meshes: one carries [`ToShard`] (requests), the other [`FromShard`] (replies).
//! Each request carries a correlation id chosen by the asking shard; the reply echoes it, and
//! the asking shard completes the matching local waiter. Channels are bounded
//! (`mesh_capacity`): a sender to a full peer waits, which is the back-pressure. A send to a
//! closed peer hands the message back, and the caller gets [`ShardError::Unreachable`] — nothing
//! is dropped silently.
//!
//! Invariants:
//! - A shard never sends to itself through the mesh; callers handle local work directly.
//! - Every pending correlation id is completed exactly once, or failed when its peer is gone
//!   (the peer's reply channel closed), so no caller waits forever on a dead shard.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::channels::local_channel::{self, LocalSender};

use crate::messages::{Reply, Request, ShardError};

pub type ShardId = protocol::routing::ShardId;

/// A request on its way to a shard.
#[derive(Debug)]
pub struct ToShard {
    pub correlation_id: u64,
    pub request: Request,
}

/// A reply on its way back.
#[derive(Debug)]
pub struct FromShard {
    pub correlation_id: u64,
    pub reply: Reply,
}

/// Something that answers requests: the shard's registry.
pub type Handler = Rc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Reply>>>>;

/// This shard's end of both meshes.
#[derive(Debug)]
pub struct Mesh {
    shard_id: ShardId,
    shard_count: usize,
    request_senders: Senders<ToShard>,
    request_receivers: RefCell<Option<Receivers<ToShard>>>,
    reply_senders: Senders<FromShard>,
    reply_receivers: RefCell<Option<Receivers<FromShard>>>,
    /// Waiters by correlation id, with the shard each one waits on.
    pending: RefCell<HashMap<u64, (ShardId, LocalSender<Reply>)>>,
    next_correlation_id: Cell<u64>,
    /// Peers whose reply channel has closed: calls to them fail at once.
    peer_gone: Vec<Cell<bool>>,
}

impl Mesh {
    /// Joins both meshes; resolves once every shard has joined.
    pub async fn join(requests: MeshBuilder<ToShard, Full>, replies: MeshBuilder<FromShard, Full>) -> Mesh {
        let shard_count = requests.nr_peers();
        let (request_senders, request_receivers) = requests.join().await.expect("joining the request mesh");
        let (reply_senders, reply_receivers) = replies.join().await.expect("joining the reply mesh");
        assert_eq!(request_senders.peer_id(), reply_senders.peer_id(), "both meshes order peers alike");
        Mesh {
            shard_id: request_senders.peer_id(),
            shard_count,
            request_senders,
            request_receivers: RefCell::new(Some(request_receivers)),
            reply_senders,
            reply_receivers: RefCell::new(Some(reply_receivers)),
            pending: RefCell::new(HashMap::new()),
            next_correlation_id: Cell::new(1),
            peer_gone: (0..shard_count).map(|_| Cell::new(false)).collect(),
        }
    }

    pub fn shard_id(&self) -> ShardId {
        self.shard_id
    }

    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    /// Calls sent to peers and not answered yet.
    pub fn pending_calls(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Sends `request` to `target` (never this shard) and waits for its reply.
    pub async fn call(&self, target: ShardId, request: Request) -> Reply {
        assert_ne!(target, self.shard_id, "local requests do not cross the mesh");
        if self.peer_gone[target].get() {
            return Reply::Failed(ShardError::Unreachable(target));
        }
        let correlation_id = self.next_correlation_id.get();
        self.next_correlation_id.set(correlation_id.wrapping_add(1));
        let (sender, receiver) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(correlation_id, (target, sender));
        if self.request_senders.send_to(target, ToShard { correlation_id, request }).await.is_err() {
            self.pending.borrow_mut().remove(&correlation_id);
            return Reply::Failed(ShardError::Unreachable(target));
        }
        match receiver.recv().await {
            Some(reply) => reply,
            None => Reply::Failed(ShardError::Unreachable(target)),
        }
    }

    /// Closes this shard's sending ends of both meshes: every peer's loops see the channels
    /// from this shard end, and their waiters on this shard fail. Called when a shard stops;
    /// glommio does not drop a finished executor's leftover tasks, so dropping is not enough.
    pub fn close(&self) {
        self.request_senders.close();
        self.reply_senders.close();
    }

    /// Starts the loops that answer requests from every peer with `handler` and route replies
    /// to their waiters. Call once per shard.
    pub fn serve(self: &Rc<Self>, handler: Handler) {
        let requests = self.request_receivers.borrow_mut().take().expect("serve is called once");
        let replies = self.reply_receivers.borrow_mut().take().expect("serve is called once");
        let requests = Rc::new(requests);
        let replies = Rc::new(replies);
        for peer in (0..self.shard_count).filter(|&p| p != self.shard_id) {
            let (mesh, requests, handler) = (self.clone(), requests.clone(), handler.clone());
            glommio::spawn_local(async move { mesh.answer_requests_from(peer, &requests, handler).await })
                .detach();
            let (mesh, replies) = (self.clone(), replies.clone());
            glommio::spawn_local(async move { mesh.route_replies_from(peer, &replies).await }).detach();
        }
    }

    async fn answer_requests_from(
        self: Rc<Self>,
        peer: ShardId,
        requests: &Receivers<ToShard>,
        handler: Handler,
    ) {
        while let Ok(Some(ToShard { correlation_id, request })) = requests.recv_from(peer).await {
            let (mesh, handler) = (self.clone(), handler.clone());
            // One task per request, so a slow request (a durable write) never stalls the others.
            glommio::spawn_local(async move {
                let reply = handler(request).await;
                if mesh.reply_senders.send_to(peer, FromShard { correlation_id, reply }).await.is_err() {
                    tracing::debug!(peer, correlation_id, "reply dropped: the asking shard is gone");
                }
            })
            .detach();
        }
    }

    async fn route_replies_from(self: Rc<Self>, peer: ShardId, replies: &Receivers<FromShard>) {
        while let Ok(Some(FromShard { correlation_id, reply })) = replies.recv_from(peer).await {
            let waiter = self.pending.borrow_mut().remove(&correlation_id);
            match waiter {
                Some((_, sender)) => {
                    let _ = sender.try_send(reply);
                }
                None => tracing::warn!(peer, correlation_id, "reply for an unknown correlation id"),
            }
        }
        // The peer is gone: its waiters get `Unreachable` (their senders drop) instead of
        // waiting forever.
        self.peer_gone[peer].set(true);
        self.pending.borrow_mut().retain(|_, (target, _)| *target != peer);
        tracing::debug!(peer, "reply channel closed");
    }
}

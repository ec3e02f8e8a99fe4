//! The registry of one shard: its devices (it is their home), the products (shard 0 writes
//! them, every shard keeps a copy), and the shard log that makes both durable.
//!
//! The tables ([`devices::DeviceTable`], [`products::ProductTable`]) are plain data; [`Shard`]
//! is the shell that logs every change before it answers, serves mesh requests and compacts.
//! Shard 0's writes of products and routing rules, and their copies on every shard, are in
//! [`replicated`].
//!
//! Invariants:
//! - Only the home shard mutates a device; only shard 0 mutates (and logs) products.
//! - A change is applied in memory and given the next revision in one synchronous step; the
//!   caller is answered only once its record is durable. Replay keeps the highest revision of
//!   each key ([`replay`]), so the recovered state is the memory's state whatever order the
//!   appends reached the disk in.
//! - Replicated products are never written to a non-zero shard's log or snapshot.

pub mod access;
pub mod devices;
pub mod legacy_records;
pub mod products;
pub mod records;
pub mod replay;
pub mod replicated;
pub mod routing;
pub mod shadow;

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use crate::device_access::link::ShutDownBy;
use crate::log::{self, Durability, LogConfig, LogError, ShardLog};
use crate::mesh::{Mesh, ShardId};
use crate::messages::{DeviceUpdate, Reply, Request, ShardError};
use devices::DeviceTable;
use products::ProductTable;
use records::{DeviceKey, DeviceRecord, RegistryRecord};

/// Storage settings of a shard.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub flush_interval_us: u64,
    pub compaction_bytes: u64,
}

/// Why a shard could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("shard {shard}: {source}")]
    Log { shard: ShardId, source: LogError },
    #[error("shard {shard}: creating {path}: {source}")]
    Io { shard: ShardId, path: PathBuf, source: std::io::Error },
    #[error("shard {shard}: undecodable record in its log: {source}")]
    Decode { shard: ShardId, source: records::DecodeError },
}

#[derive(Debug)]
pub struct Shard {
    mesh: Rc<Mesh>,
    log: Rc<ShardLog>,
    devices: RefCell<DeviceTable>,
    products: RefCell<ProductTable>,
    compacting: Cell<bool>,
    /// The revision of the last change applied to memory.
    revision: Cell<u64>,
    /// Body bytes of the last snapshot written (0 before the first).
    snapshot_bytes: Cell<u64>,
    access: access::AccessState,
    /// Shadows of the devices that have one beyond their registration (reported, changed).
    shadows: RefCell<std::collections::HashMap<String, protocol::shadow::DeviceShadow>>,
    /// Reported property values dropped for not conforming to the product model, per reason.
    reported_dropped: Cell<shadow::DroppedCounts>,
    /// Synchronous calls waiting for their device's answer.
    pub(crate) calls: crate::calls::CallState,
    /// When devices were last sent their desired properties.
    pub(crate) desired: crate::desired::DesiredState,
    /// Gateways of this shard that reported sub-devices ONLINE.
    pub(crate) gateways: crate::gateway::GatewayState,
    /// Downlink messages of this shard's devices.
    pub(crate) mailbox: crate::mailbox::MailboxState,
    /// Set by [`Shard::close`]: background work stops.
    closed: Cell<bool>,
    /// Routing rules and actions (shard 0 writes them, every shard keeps a copy).
    routing: RefCell<routing::RoutingTable>,
    /// This shard's outbox of push notifications.
    pub(crate) pusher: Rc<crate::push::Pusher>,
    /// Batch tasks (shard 0) and the slices running here.
    pub(crate) batch: crate::batch::BatchState,
    /// Shard 0: the engine's front desk, for calls other shards forward.
    front_desk: FrontDeskSlot,
}

#[derive(Default)]
struct FrontDeskSlot(std::cell::OnceCell<FrontDesk>);

impl std::fmt::Debug for FrontDeskSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "FrontDesk(installed)" } else { "FrontDesk(none)" })
    }
}

/// Serves a [`crate::messages::ForwardedCall`] (installed by the engine on shard 0).
pub type FrontDesk = Rc<
    dyn Fn(
        crate::messages::ForwardedCall,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::messages::ForwardedAnswer>>>,
>;

impl Shard {
    /// Recovers the shard's state from `{data_dir}/shard-{id}` and opens its log for writing.
    pub async fn open(mesh: Rc<Mesh>, config: &ShardConfig) -> Result<Rc<Shard>, StartError> {
        let shard = mesh.shard_id();
        let dir = config.data_dir.join(format!("shard-{shard}"));
        std::fs::create_dir_all(&dir).map_err(|source| StartError::Io {
            shard,
            path: dir.clone(),
            source,
        })?;
        let recovered = log::recover(&dir).map_err(|source| StartError::Log { shard, source })?;
        let replayed = replay::replay(&recovered.snapshot, &recovered.tail)
            .map_err(|source| StartError::Decode { shard, source })?;
        let (mut devices, products) = (replayed.devices, replayed.products);
        let shadows = shadow::parse_shadows(shard, replayed.shadows);
        let mut routing = routing::RoutingTable::default();
        for record in replayed.routing {
            routing.put(record);
        }
        // Nobody is connected to a shard that just started.
        devices.mark_online_offline();
        tracing::info!(
            shard,
            devices = devices.len(),
            products = products.len(),
            messages = replayed.messages.len(),
            "shard state recovered"
        );
        let log_config = LogConfig {
            dir,
            durability: config.durability,
            flush_interval_us: config.flush_interval_us,
            batch_bytes_max: 1 << 20,
            compaction_bytes: config.compaction_bytes,
        };
        let log = ShardLog::open(log_config, &recovered)
            .await
            .map_err(|source| StartError::Log { shard, source })?;
        Ok(Rc::new(Shard {
            mesh,
            log,
            devices: RefCell::new(devices),
            products: RefCell::new(products),
            compacting: Cell::new(false),
            revision: Cell::new(replayed.revision),
            snapshot_bytes: Cell::new(0),
            access: access::AccessState::default(),
            shadows: RefCell::new(shadows),
            reported_dropped: Cell::new(Default::default()),
            calls: crate::calls::CallState::default(),
            desired: crate::desired::DesiredState::default(),
            gateways: crate::gateway::GatewayState::default(),
            mailbox: crate::mailbox::MailboxState::recovered(replayed.messages),
            closed: Cell::new(false),
            routing: RefCell::new(routing),
            pusher: crate::push::Pusher::new(crate::push::PushConfig::default()),
            batch: crate::batch::BatchState::recovered(replayed.batch_tasks),
            front_desk: FrontDeskSlot::default(),
        }))
    }

    pub fn id(&self) -> ShardId {
        self.mesh.shard_id()
    }

    pub fn shard_count(&self) -> usize {
        self.mesh.shard_count()
    }

    /// Installs the front desk that serves calls forwarded from other shards (shard 0).
    pub fn set_front_desk(&self, front_desk: FrontDesk) {
        let _ = self.front_desk.0.set(front_desk);
    }

    /// Answers mesh requests from the other shards from now on.
    pub fn start_serving(self: &Rc<Self>) {
        let shard = self.clone();
        self.mesh.serve(Rc::new(move |request| {
            let shard = shard.clone();
            Box::pin(async move { shard.handle(request).await })
        }));
        self.start_ticking();
        if self.id() == 0 {
            let shard = self.clone();
            glommio::spawn_local(async move { shard.fail_unfinished_batch_targets().await }).detach();
        }
    }

    /// Runs `request` on `target`: here if it is this shard, else over the mesh.
    pub async fn call(self: &Rc<Self>, target: ShardId, request: Request) -> Reply {
        if target == self.id() {
            self.handle(request).await
        } else {
            self.mesh.call(target, request).await
        }
    }

    /// Runs one request per shard concurrently; replies in shard order.
    pub async fn call_all(self: &Rc<Self>, request: impl Fn(ShardId) -> Request) -> Vec<Reply> {
        let tasks: Vec<_> = (0..self.shard_count())
            .map(|target| {
                let (shard, request) = (self.clone(), request(target));
                glommio::spawn_local(async move { shard.call(target, request).await })
            })
            .collect();
        let mut replies = Vec::with_capacity(tasks.len());
        for task in tasks {
            replies.push(task.await);
        }
        replies
    }

    /// Serves one request against this shard's state.
    pub async fn handle(self: &Rc<Self>, request: Request) -> Reply {
        match request {
            Request::AddDevice(device) => self.add_device(*device).await,
            Request::ShowDevice { project_id, device_id } => match self.device_of(&project_id, &device_id) {
                Some(device) => Reply::Device(Box::new(device)),
                None => Reply::Failed(ShardError::DeviceNotFound),
            },
            Request::UpdateDevice { project_id, device_id, update } => {
                self.update_device(&project_id, &device_id, update).await
            }
            Request::DeleteDevice { project_id, device_id } => {
                self.delete_device(&project_id, &device_id).await
            }
            Request::ListDevices { filter, marker, take } => {
                Reply::Devices(self.devices.borrow().slice(&filter, marker, take))
            }
            Request::CountSubDevices { gateway_id } => {
                Reply::Count(self.devices.borrow().count_children(&gateway_id))
            }
            Request::CountDevicesOfProduct { project_id, product_id } => {
                Reply::Count(self.devices.borrow().count_of_product(&project_id, &product_id))
            }
            Request::RecordIdMax => {
                let devices = self.devices.borrow().record_id_max();
                let products = if self.id() == 0 { self.products.borrow().record_id_max() } else { 0 };
                Reply::RecordId(devices.max(products))
            }
            Request::AdoptConnection(adoption) => self.adopt(*adoption),
            Request::ShowShadow { project_id, device_id } => self.show_shadow(&project_id, &device_id),
            Request::UpdateShadowDesired { project_id, device_id, update } => {
                self.update_desired(&project_id, &device_id, *update).await
            }
            Request::DeviceCall(call) => self.device_call(*call).await,
            Request::GatewayCall(routed) => self.gateway_call(*routed).await,
            Request::Gateway(request) => self.gateway_request(*request).await,
            Request::Metrics => Reply::Metrics(Box::new(self.metrics())),
            Request::CreateMessage(message) => {
                // In its own task: a caller that goes away (an HTTP client disconnecting) must
                // not cut a delivery in half.
                let shard = self.clone();
                glommio::spawn_local(async move { shard.create_message(*message).await }).await
            }
            Request::ListMessages { project_id, device_id } => self.list_messages(&project_id, &device_id),
            Request::ShowMessage { project_id, device_id, message_id } => {
                self.show_message(&project_id, &device_id, &message_id)
            }
            Request::ReplicateProduct(product) => {
                self.products.borrow_mut().put(product);
                Reply::Done
            }
            Request::ForgetProduct(key) => {
                self.products.borrow_mut().remove(&key);
                Reply::Done
            }
            // Boxed: a slice reports to shard 0 through `call`, which may run `handle` again.
            Request::FrontDesk(call) => match self.front_desk.0.get().cloned() {
                Some(front_desk) => Reply::FrontDesk(Box::new(front_desk(*call).await)),
                None => {
                    Reply::Failed(ShardError::Unavailable("shard 0's front desk is not serving yet".into()))
                }
            },
            Request::RunBatchSlice(slice) => Box::pin(self.run_batch_slice(*slice)).await,
            Request::BatchProgress(results) => {
                let key = records::BatchTaskKey { project_id: results.project_id, task_id: results.task_id };
                self.apply_batch_results(&key, results.results).await
            }
            Request::StopBatch { task_id, targets } => self.stop_batch_slice(&task_id, targets),
            Request::ReplicateRouting(record) => {
                self.routing.borrow_mut().put(record);
                Reply::Done
            }
            Request::ForgetRouting(key) => {
                self.routing.borrow_mut().remove(&key);
                Reply::Done
            }
        }
    }

    /// Whether the device exists in the project (no copy of the record).
    pub(crate) fn has_device(&self, project_id: &str, device_id: &str) -> bool {
        self.devices.borrow().get(device_id).is_some_and(|d| d.project_id == project_id)
    }

    /// The product model of a device of the project: `None` if there is no such device,
    /// `Some((product_id, None))` if its product has no model here.
    pub(crate) fn model_of_device(
        &self,
        project_id: &str,
        device_id: &str,
    ) -> Option<(String, Option<Rc<protocol::model::Product>>)> {
        let devices = self.devices.borrow();
        let device = devices.get(device_id).filter(|d| d.project_id == project_id)?;
        Some((device.product_id.clone(), self.products.borrow().model(project_id, &device.product_id)))
    }

    pub(crate) fn device_of(&self, project_id: &str, device_id: &str) -> Option<DeviceRecord> {
        self.devices.borrow().get(device_id).filter(|d| d.project_id == project_id).cloned()
    }

    async fn add_device(self: &Rc<Self>, device: DeviceRecord) -> Reply {
        if self.devices.borrow().get(&device.device_id).is_some() {
            return Reply::Failed(ShardError::DeviceExists);
        }
        match self.write_device(&device.device_id.clone(), Some(device.clone())).await {
            Ok(()) => Reply::Device(Box::new(device)),
            Err(error) => Reply::Failed(error),
        }
    }

    async fn update_device(
        self: &Rc<Self>,
        project_id: &str,
        device_id: &str,
        update: DeviceUpdate,
    ) -> Reply {
        let Some(mut device) = self.device_of(project_id, device_id) else {
            return Reply::Failed(ShardError::DeviceNotFound);
        };
        let DeviceUpdate {
            device_name,
            description,
            extension_info_json,
            secure_access,
            timeout_s,
            credentials,
            disconnect,
            freeze,
        } = update;
        device.device_name = device_name.or(device.device_name);
        device.description = description.or(device.description);
        device.extension_info_json = extension_info_json.or(device.extension_info_json);
        device.secure_access = secure_access.unwrap_or(device.secure_access);
        device.timeout_s = timeout_s.unwrap_or(device.timeout_s);
        if let Some(change) = credentials {
            if let Err(error) = access::change_credentials(&mut device, change) {
                return Reply::Failed(ShardError::Invalid(error));
            }
        }
        if let Some(freeze) = freeze {
            if let Err(error) = access::change_frozen(&mut device, freeze, crate::now_unix_ms()) {
                return Reply::Failed(error);
            }
        }
        match self.write_device(device_id, Some(device.clone())).await {
            Ok(()) => {
                if freeze == Some(true) {
                    self.disconnect_session(device_id, ShutDownBy::Frozen);
                    self.fail_calls_of_frozen(device_id);
                } else if disconnect {
                    self.disconnect_session(device_id, ShutDownBy::CredentialsChanged);
                }
                Reply::Device(Box::new(device))
            }
            Err(error) => Reply::Failed(error),
        }
    }

    async fn delete_device(self: &Rc<Self>, project_id: &str, device_id: &str) -> Reply {
        if !self.has_device(project_id, device_id) {
            return Reply::Failed(ShardError::DeviceNotFound);
        }
        match self.write_device(device_id, None).await {
            Ok(()) => {
                self.shadows.borrow_mut().remove(device_id);
                self.disconnect_device(device_id);
                self.cancel_device_calls(device_id);
                self.forget_messages(device_id);
                self.forget_desired(device_id);
                Reply::Done
            }
            Err(error) => Reply::Failed(error),
        }
    }

    /// Puts (`Some`) or removes (`None`) a device in memory and logs the change. If the log
    /// refuses it, the memory change is undone — unless a later change replaced it already —
    /// so a caller told "unavailable" never sees the change take effect.
    async fn write_device(
        self: &Rc<Self>,
        device_id: &str,
        written: Option<DeviceRecord>,
    ) -> Result<(), ShardError> {
        let previous = {
            let mut devices = self.devices.borrow_mut();
            let previous = devices.get(device_id).cloned();
            match &written {
                Some(device) => devices.put(device.clone()),
                None => drop(devices.remove(device_id)),
            }
            previous
        };
        let record = match &written {
            Some(device) => RegistryRecord::DevicePut(Box::new(device.clone())),
            None => RegistryRecord::DeviceDelete(DeviceKey { device_id: device_id.into() }),
        };
        let result = self.persist(record).await;
        if result.is_err() {
            let mut devices = self.devices.borrow_mut();
            if devices.get(device_id) == written.as_ref() {
                match previous {
                    Some(device) => devices.put(device),
                    None => drop(devices.remove(device_id)),
                }
            }
        }
        result
    }

    /// The highest record id held by any shard.
    pub async fn record_id_max(self: &Rc<Self>) -> Result<u128, ShardError> {
        let mut max = 0;
        for reply in self.call_all(|_| Request::RecordIdMax).await {
            match reply {
                Reply::RecordId(record_id) => max = max.max(record_id),
                Reply::Failed(error) => return Err(error),
                _ => return Err(ShardError::UnexpectedReply),
            }
        }
        Ok(max)
    }

    /// Gives the change just applied to memory the next revision, appends it and waits until
    /// it is durable; compacts when the log has grown. Call it right after changing memory,
    /// with no await in between, so revisions follow the order of the changes.
    pub(crate) async fn persist(self: &Rc<Self>, record: RegistryRecord) -> Result<(), ShardError> {
        let revision = self.revision.get() + 1;
        self.revision.set(revision);
        let result = self.log.append(record.encode(revision)).await;
        self.compact_if_needed();
        result.map_err(|e| ShardError::Unavailable(e.to_string()))
    }

    /// Compacts once the log has passed `compaction_bytes` **and** grown past the size of the
    /// last snapshot: a state larger than the bound is not rewritten for every few appends.
    fn compact_if_needed(self: &Rc<Self>) {
        let grown_past_snapshot = self.log.stats().log_bytes >= self.snapshot_bytes.get();
        if self.compacting.get() || !self.log.needs_compaction() || !grown_past_snapshot {
            return;
        }
        self.compacting.set(true);
        let shard = self.clone();
        glommio::spawn_local(async move {
            // The snapshot is taken and handed to the log in one synchronous step (awaiting
            // `compact` polls it at once), so it covers exactly the records appended before
            // the log switches segments.
            let snapshot = shard.snapshot_records();
            shard.snapshot_bytes.set(snapshot.iter().map(|r| r.body.len() as u64).sum());
            if let Err(error) = shard.log.compact(snapshot).await {
                tracing::error!(shard = shard.id(), %error, "compaction failed; the log keeps growing");
            }
            shard.compacting.set(false);
        })
        .detach();
    }

    /// The whole state as of the last revision, opened by a snapshot mark at that revision.
    fn snapshot_records(&self) -> Vec<log::LogRecord> {
        let revision = self.revision.get();
        let mut records = vec![RegistryRecord::SnapshotMark.encode(revision)];
        let devices = self.devices.borrow();
        records
            .extend(devices.iter().map(|d| RegistryRecord::DevicePut(Box::new(d.clone())).encode(revision)));
        if self.id() == 0 {
            let products = self.products.borrow();
            records.extend(products.iter().map(|p| RegistryRecord::ProductPut(p.clone()).encode(revision)));
            let routing = self.routing.borrow();
            records.extend(routing.iter().map(|r| RegistryRecord::RoutingPut(r.clone()).encode(revision)));
            records.extend(self.batch_snapshot(revision));
        }
        records.extend(self.shadow_snapshot(revision));
        records.extend(self.message_snapshot(revision));
        records
    }

    /// This shard's figures for `/metrics`.
    pub fn metrics(&self) -> crate::messages::ShardMetrics {
        crate::messages::ShardMetrics {
            shard: self.id(),
            devices: self.devices.borrow().len(),
            live_sessions: self.live_sessions(),
            open_connections: self.open_connections(),
            mqtt_waiting: self.access.admission.get().map_or(0, |admission| admission.waiting()),
            mqtt_admission: self
                .access
                .admission
                .get()
                .map(|admission| admission.counts())
                .unwrap_or_default(),
            tls: self.access.tls.counts(),
            mqtt_budget: self
                .access
                .config
                .get()
                .map_or((0, 0), |config| (config.connection_budget.open(), config.connection_budget.max())),
            waiting_calls: self.calls.waiting(),
            messages: self.mailbox.counts(),
            messages_kept: self.mailbox.kept(),
            push: self.pusher.stats(),
            mesh_pending: self.mesh.pending_calls(),
            calls: self.calls.metrics(),
            uplink: self.uplink_counts(),
            reported_properties_dropped: self.dropped_counts(),
            log: self.log.stats(),
        }
    }

    /// Whether [`Shard::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Flushes the log and refuses further writes. Idempotent.
    pub async fn close(&self) {
        self.closed.set(true);
        self.pusher.close();
        if let Err(error) = self.log.close().await {
            tracing::error!(shard = self.id(), %error, "closing the log");
        }
    }
}

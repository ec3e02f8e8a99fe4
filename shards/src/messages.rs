//! What shards say to each other. One enum per direction: [`Request`] travels inside
//! [`ToShard`](crate::mesh::ToShard), [`Reply`] inside [`FromShard`](crate::mesh::FromShard).
//! Everything here is owned and `Send` (no `Rc`, no sockets): it crosses threads.

use crate::registry::devices::{DeviceFilter, DeviceSlice};
use crate::registry::records::{DeviceRecord, ProductKey, ProductRecord};

/// Fields of UpdateDevice (and of the credential resets); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceUpdate {
    pub device_name: Option<String>,
    pub description: Option<String>,
    pub extension_info_json: Option<String>,
    pub secure_access: Option<bool>,
    pub timeout_s: Option<u32>,
    pub credentials: Option<CredentialChange>,
    /// Disconnect the device's live session once the change is durable.
    pub disconnect: bool,
    /// Freeze (`true`) or unfreeze (`false`) the device.
    pub freeze: Option<bool>,
}

/// A new credential for a device (validated already). `Debug` leaves the secret out.
#[derive(Clone, PartialEq)]
pub enum CredentialChange {
    /// ResetFingerprint: a CERTIFICATES device's primary or secondary fingerprint; an empty
    /// secondary one removes it.
    Fingerprint { secondary: bool, fingerprint: String },
    /// resetSecret: a SECRET device's primary or secondary secret.
    Secret { secondary: bool, secret: String },
}

/// A device connection handed to its home shard: the socket, what was read from it already
/// beyond the CONNECT, and the CONNECT.
#[derive(Debug)]
pub struct Adoption {
    pub fd: std::os::fd::OwnedFd,
    pub buffered: Vec<u8>,
    pub connect: protocol::mqtt::codec::Connect,
    /// The connection's share of the process-wide MQTT budget, given back when it closes.
    pub slot: crate::listen::BudgetSlot,
    /// rustls's state of a TLS connection (handshake done, CONNECT read through it).
    pub tls: Option<Box<rustls::ServerConnection>>,
}

impl std::fmt::Debug for CredentialChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialChange::Fingerprint { secondary, fingerprint } => f
                .debug_struct("Fingerprint")
                .field("secondary", secondary)
                .field("fingerprint", fingerprint)
                .finish(),
            CredentialChange::Secret { secondary, .. } => {
                f.debug_struct("Secret").field("secondary", secondary).field("secret", &"<redacted>").finish()
            }
        }
    }
}

/// Not `Clone`: an [`Adoption`] owns a file descriptor.
#[derive(Debug)]
pub enum Request {
    /// Register a device on its home shard (record id and secret already chosen by shard 0).
    AddDevice(Box<DeviceRecord>),
    ShowDevice {
        project_id: String,
        device_id: String,
    },
    UpdateDevice {
        project_id: String,
        device_id: String,
        update: DeviceUpdate,
    },
    DeleteDevice {
        project_id: String,
        device_id: String,
    },
    /// This shard's part of a list page.
    ListDevices {
        filter: DeviceFilter,
        marker: u128,
        take: usize,
    },
    CountDevicesOfProduct {
        project_id: String,
        product_id: String,
    },
    /// Sub-devices of a gateway on this shard (device ids are unique across projects).
    CountSubDevices {
        gateway_id: String,
    },
    /// The highest record id this shard holds (devices and, on shard 0, products), so that
    /// shard 0 hands out ids above every existing one after a restart.
    RecordIdMax,
    /// ShowDeviceShadow.
    ShowShadow {
        project_id: String,
        device_id: String,
    },
    /// UpdateDeviceShadowDesiredData (`crate::desired`).
    UpdateShadowDesired {
        project_id: String,
        device_id: String,
        update: Box<protocol::shadow::DesiredUpdate>,
    },
    /// A command, property set or property get for a device of this shard (spec §2.5–§2.6).
    DeviceCall(Box<crate::calls::DeviceCall>),
    /// A sub-device's call, to the gateway's home shard (`crate::calls::gateway`).
    GatewayCall(Box<crate::calls::gateway::GatewayCall>),
    /// A gateway's uplink for one of its sub-devices, or its going offline (`crate::gateway`).
    Gateway(Box<crate::gateway::GatewayRequest>),
    /// This shard's figures for `/metrics`.
    Metrics,
    /// CreateMessage for a device of this shard (spec §2.7).
    CreateMessage(Box<crate::mailbox::NewMessage>),
    ListMessages {
        project_id: String,
        device_id: String,
    },
    ShowMessage {
        project_id: String,
        device_id: String,
        message_id: String,
    },
    /// Run this device connection here, its home (the accepting shard read its CONNECT).
    AdoptConnection(Box<Adoption>),
    /// Shard 0 made this product durable; keep a read-only copy.
    ReplicateProduct(ProductRecord),
    ForgetProduct(ProductKey),
    /// A REST call that another shard's front desk received for something shard 0 owns
    /// (product and routing-rule writes, batch tasks); the caller is already authenticated.
    FrontDesk(Box<ForwardedCall>),
    /// Run this shard's part of a batch task.
    RunBatchSlice(Box<crate::batch::BatchSlice>),
    /// To shard 0: final results of some of a task's targets.
    BatchProgress(Box<crate::registry::records::BatchResultsRecord>),
    /// Stop the targets not started yet (`None`: all of them) of a task's slice here.
    StopBatch {
        task_id: String,
        targets: Option<Vec<String>>,
    },
    /// Shard 0 made this routing rule or action durable; keep a copy.
    ReplicateRouting(crate::registry::records::RoutingRecord),
    ForgetRouting(crate::registry::records::RoutingKey),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Device(Box<DeviceRecord>),
    Devices(DeviceSlice),
    Count(u64),
    RecordId(u128),
    Shadow(Box<protocol::shadow::DeviceShadow>),
    /// The device answered a call: its JSON, verbatim.
    Answered {
        request_id: String,
        response: Vec<u8>,
    },
    /// The device did not answer before the deadline.
    TimedOut {
        request_id: String,
    },
    Metrics(Box<ShardMetrics>),
    Message(Box<crate::registry::records::MessageRecord>),
    FrontDesk(Box<ForwardedAnswer>),
    /// A device's messages, oldest first.
    Messages(Vec<crate::registry::records::MessageRecord>),
    Done,
    Failed(ShardError),
}

/// Why a shard could not do what was asked. The engine maps each to an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("the device already exists")]
    DeviceExists,
    #[error("the device does not exist")]
    DeviceNotFound,
    #[error("the device is offline")]
    DeviceOffline,
    #[error("the device is frozen; unfreeze it first")]
    DeviceFrozen,
    #[error("the device is not frozen")]
    NotFrozen,
    #[error("the message does not exist")]
    MessageNotFound,
    #[error("the batch task does not exist")]
    BatchTaskNotFound,
    #[error("the batch task is still running; stop it and wait until it has finished")]
    BatchTaskRunning,
    /// The call breaks the product model.
    #[error(transparent)]
    Invalid(#[from] protocol::error::ValidationError),
    /// The device already has this many calls waiting.
    #[error("the device already has {0} calls waiting for its answer; retry later")]
    TooManyCalls(usize),
    /// The sub-device's gateway already has this many calls waiting, for all its sub-devices.
    #[error("the sub-device's gateway already has {0} calls waiting for its answers; retry later")]
    GatewayTooManyCalls(usize),
    /// The device's QoS 1 window is full (it does not acknowledge what it was sent).
    #[error("the device is not acknowledging its QoS 1 publishes ({0}); retry later")]
    DeviceBusy(String),
    /// The shard cannot persist (log closed for shutdown, or an I/O error): nothing changed
    /// that a later read could see as durable, and the client may retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The other shard is gone (shutting down) or the mesh refused the message.
    #[error("shard {0} is not reachable")]
    Unreachable(usize),
    #[error("reply did not match the request")]
    UnexpectedReply,
}

/// An authenticated REST call forwarded to shard 0's front desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedCall {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub project_id: String,
    pub body: Vec<u8>,
}

/// Shard 0's answer to a [`ForwardedCall`]: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One shard's figures, summed by `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardMetrics {
    pub shard: usize,
    pub devices: usize,
    /// Devices logged in on this shard.
    pub live_sessions: usize,
    /// MQTT connections open (logging in, or sessions).
    pub open_connections: usize,
    /// MQTT connections waiting for their CONNECT, and what admission did with the others
    /// (`device_access::admission`).
    pub mqtt_waiting: usize,
    pub mqtt_admission: crate::device_access::admission::AdmissionCounts,
    /// TLS figures of the MQTT and HTTPS listeners (`(mqtt, https)`).
    pub tls: (crate::tls::TlsCounts, crate::tls::TlsCounts),
    /// The process-wide MQTT bound of the open-files plan and the connections holding it
    /// (`(open, max)`, the same figures on every shard).
    pub mqtt_budget: (usize, usize),
    /// Synchronous calls waiting for an answer.
    pub waiting_calls: usize,
    /// Message status transitions since start.
    pub messages: crate::mailbox::MessageCounts,
    /// Messages kept, and of them pending.
    pub messages_kept: (usize, usize),
    pub push: crate::push::PushStats,
    /// Mesh requests this shard waits on (the mesh's queue depth as this shard sees it).
    pub mesh_pending: usize,
    pub calls: crate::calls::metrics::CallMetrics,
    pub uplink: crate::registry::access::UplinkCounts,
    /// Reported property values dropped for not conforming to the product model, indexed by
    /// [`protocol::model::report::DropReason::index`].
    pub reported_properties_dropped: crate::registry::shadow::DroppedCounts,
    pub log: crate::log::LogStats,
}

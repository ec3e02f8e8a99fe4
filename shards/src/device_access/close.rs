//! Why a device session ended. An operator reading the log must be able to tell a device that
//! hung up from one that was taken over, deleted, stalled or timed out: each session's end is
//! said once, at info, with one of these.
//!
//! The session learns most reasons itself (what its reader saw). The others come from outside
//! — a takeover, a delete, a stalled writer — and all look the same to the reader (the socket
//! was shut down: EOF), so whoever shuts the socket down records why first
//! ([`super::link::SessionLink::shut_down`]); the first recorded reason wins.

use std::time::Duration;

/// The reason a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The device sent DISCONNECT.
    Disconnected,
    /// The device closed the TCP connection without a DISCONNECT.
    HungUp,
    /// Nothing came from the device for 1.5 × its keep-alive.
    KeepAliveExpired(Duration),
    /// A newer login of the same device took over.
    TakenOver,
    /// The device was deleted.
    DeviceDeleted,
    /// The application changed the device's credentials and asked for it to be disconnected.
    CredentialsChanged,
    /// The application froze the device.
    Frozen,
    /// The device does not read: its outbound queue filled, or a write made no progress.
    Stalled(String),
    /// The device broke the protocol or used a topic it may not use.
    ProtocolError(String),
    /// The connection failed (a socket error).
    Failed(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Disconnected => write!(f, "disconnected by the device (DISCONNECT)"),
            CloseReason::HungUp => write!(f, "hung up by the device (connection closed without DISCONNECT)"),
            CloseReason::KeepAliveExpired(after) => {
                write!(f, "timed out: keep-alive expired ({} ms without a packet)", after.as_millis())
            }
            CloseReason::TakenOver => write!(f, "taken over by a newer login of the device"),
            CloseReason::DeviceDeleted => write!(f, "the device was deleted"),
            CloseReason::CredentialsChanged => {
                write!(f, "the device's credentials were reset (force_disconnect)")
            }
            CloseReason::Frozen => write!(f, "the device was frozen"),
            CloseReason::Stalled(detail) => write!(f, "stalled: the device does not read ({detail})"),
            CloseReason::ProtocolError(detail) => write!(f, "protocol error: {detail}"),
            CloseReason::Failed(detail) => write!(f, "connection failed: {detail}"),
        }
    }
}

impl CloseReason {
    /// A short label for metrics and structured logs.
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Disconnected => "disconnected",
            CloseReason::HungUp => "hung_up",
            CloseReason::KeepAliveExpired(_) => "keep_alive_expired",
            CloseReason::TakenOver => "taken_over",
            CloseReason::DeviceDeleted => "deleted",
            CloseReason::CredentialsChanged => "credentials_changed",
            CloseReason::Frozen => "frozen",
            CloseReason::Stalled(_) => "stalled",
            CloseReason::ProtocolError(_) => "protocol_error",
            CloseReason::Failed(_) => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_says_which() {
        let reasons = [
            CloseReason::Disconnected,
            CloseReason::HungUp,
            CloseReason::KeepAliveExpired(Duration::from_secs(45)),
            CloseReason::TakenOver,
            CloseReason::DeviceDeleted,
            CloseReason::CredentialsChanged,
            CloseReason::Frozen,
            CloseReason::Stalled("32 packets queued".into()),
            CloseReason::ProtocolError("QoS 2".into()),
            CloseReason::Failed("reset".into()),
        ];
        let labels: std::collections::HashSet<_> = reasons.iter().map(CloseReason::label).collect();
        assert_eq!(labels.len(), reasons.len());
        assert!(reasons[2].to_string().contains("45000 ms"));
        assert!(reasons[7].to_string().contains("32 packets queued"));
    }
}

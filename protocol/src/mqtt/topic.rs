//! IoTDA topics (spec §1.3, §1.4): what a device may publish to and subscribe to, MQTT filter
//! matching, and the downlink system topics.
//!
//! Every device topic lives under `$oc/devices/{device_id}/`: `sys/…` for system topics,
//! `user/{suffix}` for custom ones. Non-`$oc` topics are custom topics the spec leaves
//! unchecked.
//!
//! ## Decisions where the spec is silent
//! - A `?query` on an `$oc` uplink topic (`…/sys/messages/up?request_id=abc`) is ignored for
//!   classification, `user/…` topics included; [`query_request_id`] reads it.
//! - A device may not publish to its own downlink topics (`sys/messages/down`, …) or to
//!   `$oc/broadcast/…`: those are the platform's to send.
//! - Subscribing to `$oc/broadcast/…` is allowed: broadcasts (REST BroadcastMessage) reach
//!   devices only through it, and it carries nothing device-specific.
//! - Filters whose first level is a wildcard (`#`, `+/…`) are allowed as custom
//!   subscriptions: by [MQTT-4.7.2-1] they never match a `$` topic, so never another device's
//!   `$oc` topics. Other `$`-filters (`$SYS/…`, a v5 `$share/…`) are custom topics like any
//!   non-`$oc` one: shared subscriptions are not implemented (CONNACK says so), so such a
//!   filter is matched literally and cannot reach `$oc/…`.
//! - An `$oc` filter that could match another device's topics is refused as
//!   [`TopicRefusal::OtherDevice`] (`$oc/#`, `$oc/devices/+/…`, `$oc/+/{other}/…`); any other
//!   `$oc` filter outside the device's own prefix and `$oc/broadcast/` as
//!   [`TopicRefusal::NotAllowed`].
//!
//! ## Invariants
//! - A device id from a parsed clientId contains no `/`, `+` or `#` (see
//!   [`crate::mqtt::login`]), so `$oc/devices/{id}/` is a prefix no other device shares.
//! - An allowed filter never matches a topic under another device's prefix.

#[cfg(test)]
mod tests;

use thiserror::Error;

use super::codec::PublishRefusal;

const DEVICES_ROOT: &str = "$oc/devices/";
const OC_LEVEL: &str = "$oc";

const MESSAGES_UP: &str = "sys/messages/up";
const MESSAGES_DOWN: &str = "sys/messages/down";
const PROPERTIES_REPORT: &str = "sys/properties/report";
const GATEWAY_PROPERTIES_REPORT: &str = "sys/gateway/sub_devices/properties/report";
const EVENTS_UP: &str = "sys/events/up";
const EVENTS_DOWN: &str = "sys/events/down";
const COMMAND: &str = "sys/commands/request_id=";
const COMMAND_RESPONSE: &str = "sys/commands/response/request_id=";
const PROPERTIES_SET: &str = "sys/properties/set/request_id=";
const PROPERTIES_SET_RESPONSE: &str = "sys/properties/set/response/request_id=";
const PROPERTIES_GET: &str = "sys/properties/get/request_id=";
const PROPERTIES_GET_RESPONSE: &str = "sys/properties/get/response/request_id=";
const SHADOW_GET: &str = "sys/shadow/get/request_id=";
const SHADOW_GET_RESPONSE: &str = "sys/shadow/get/response/request_id=";
const USER: &str = "user/";

/// Downlink topics that carry a request id, after the device prefix.
const DOWNLINK_WITH_REQUEST_ID: [&str; 4] = [COMMAND, PROPERTIES_SET, PROPERTIES_GET, SHADOW_GET_RESPONSE];

/// What a device published to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uplink<'a> {
    MessagesUp,
    PropertiesReport,
    GatewaySubDevicesPropertiesReport,
    CommandResponse {
        request_id: &'a str,
    },
    PropertiesSetResponse {
        request_id: &'a str,
    },
    PropertiesGetResponse {
        request_id: &'a str,
    },
    ShadowGet {
        request_id: &'a str,
    },
    EventsUp,
    /// `$oc/devices/{id}/user/{suffix}`.
    User {
        suffix: &'a str,
    },
    /// A non-`$oc` topic (not ACL-checked).
    Custom,
}

/// Why a topic or filter was refused; the message is for the log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicRefusal {
    /// Another device's topics.
    #[error("{0}")]
    OtherDevice(String),
    /// An `$oc` topic the device has no business with.
    #[error("{0}")]
    NotAllowed(String),
    /// Not a valid topic name or filter; the message names the clause.
    #[error("{0}")]
    Invalid(String),
}

impl TopicRefusal {
    /// The v5 PUBACK reason for a refused PUBLISH.
    pub fn publish_refusal(&self) -> PublishRefusal {
        match self {
            TopicRefusal::OtherDevice(_) | TopicRefusal::NotAllowed(_) => PublishRefusal::NotAuthorized,
            TopicRefusal::Invalid(_) => PublishRefusal::TopicNameInvalid,
        }
    }
}

/// `$oc/devices/{device_id}/`.
pub fn device_prefix(device_id: &str) -> String {
    format!("{DEVICES_ROOT}{device_id}/")
}

/// Classifies a topic `device_id` published to.
pub fn classify_uplink<'a>(device_id: &str, topic: &'a str) -> Result<Uplink<'a>, TopicRefusal> {
    check_topic_name(topic)?;
    if topic.split('/').next() != Some(OC_LEVEL) {
        return Ok(Uplink::Custom);
    }
    let Some(after_root) = topic.strip_prefix(DEVICES_ROOT) else {
        return Err(TopicRefusal::NotAllowed("a device publishes only under $oc/devices/{own id}/".into()));
    };
    let (owner, path) = after_root.split_once('/').unwrap_or((after_root, ""));
    if owner != device_id {
        return Err(TopicRefusal::OtherDevice(format!(
            "device {device_id} published to another device's topics"
        )));
    }
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    own_uplink(path).ok_or_else(|| {
        TopicRefusal::NotAllowed(format!(
            "device {device_id} published to a topic that is not an uplink topic"
        ))
    })
}

/// An uplink path after the device prefix, query removed.
fn own_uplink(path: &str) -> Option<Uplink<'_>> {
    let fixed = match path {
        MESSAGES_UP => Some(Uplink::MessagesUp),
        PROPERTIES_REPORT => Some(Uplink::PropertiesReport),
        GATEWAY_PROPERTIES_REPORT => Some(Uplink::GatewaySubDevicesPropertiesReport),
        EVENTS_UP => Some(Uplink::EventsUp),
        _ => None,
    };
    fixed
        .or_else(|| {
            request_id_after(path, COMMAND_RESPONSE).map(|request_id| Uplink::CommandResponse { request_id })
        })
        .or_else(|| {
            request_id_after(path, PROPERTIES_SET_RESPONSE)
                .map(|request_id| Uplink::PropertiesSetResponse { request_id })
        })
        .or_else(|| {
            request_id_after(path, PROPERTIES_GET_RESPONSE)
                .map(|request_id| Uplink::PropertiesGetResponse { request_id })
        })
        .or_else(|| request_id_after(path, SHADOW_GET).map(|request_id| Uplink::ShadowGet { request_id }))
        .or_else(|| {
            path.strip_prefix(USER).filter(|suffix| !suffix.is_empty()).map(|suffix| Uplink::User { suffix })
        })
}

/// The request id in `{prefix}{request_id}`: non-empty, one topic level.
fn request_id_after<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix).filter(|request_id| !request_id.is_empty() && !request_id.contains('/'))
}

/// The `request_id` of a topic's `?query` (`…/sys/messages/up?request_id=abc` → `abc`), if
/// present and non-empty.
pub fn query_request_id(topic: &str) -> Option<&str> {
    let (_, query) = topic.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("request_id="))
        .filter(|request_id| !request_id.is_empty())
}

/// A PUBLISH topic name: non-empty [MQTT-4.7.3-1], no NUL [MQTT-4.7.3-2], no wildcard
/// [MQTT-3.3.2-2].
fn check_topic_name(topic: &str) -> Result<(), TopicRefusal> {
    if topic.is_empty() {
        return Err(TopicRefusal::Invalid("[MQTT-4.7.3-1] empty topic name".into()));
    }
    if topic.contains('\0') {
        return Err(TopicRefusal::Invalid("[MQTT-4.7.3-2] topic name contains U+0000".into()));
    }
    if topic.contains(['+', '#']) {
        return Err(TopicRefusal::Invalid("[MQTT-3.3.2-2] wildcard in a topic name".into()));
    }
    Ok(())
}

/// Whether `device_id` may subscribe to `filter` (see the module doc for the rules).
pub fn filter_allowed(device_id: &str, filter: &str) -> Result<(), TopicRefusal> {
    check_filter(filter)?;
    let mut levels = filter.split('/');
    if levels.next() != Some(OC_LEVEL) {
        return Ok(());
    }
    match (levels.next(), levels.next()) {
        (Some("devices"), Some(owner)) if owner == device_id => Ok(()),
        (Some("broadcast"), _) => Ok(()),
        (Some("#"), _) => Err(other_device_filter(device_id)),
        (Some("devices" | "+"), Some(owner)) if owner != device_id => Err(other_device_filter(device_id)),
        _ => Err(TopicRefusal::NotAllowed(format!(
            "device {device_id} may subscribe in $oc only under its own prefix or $oc/broadcast/"
        ))),
    }
}

fn other_device_filter(device_id: &str) -> TopicRefusal {
    TopicRefusal::OtherDevice(format!(
        "device {device_id} subscribed to a filter matching other devices' topics"
    ))
}

/// A topic filter: non-empty [MQTT-4.7.3-1], no NUL [MQTT-4.7.3-2], `#` only as the whole
/// last level [MQTT-4.7.1-2], `+` only as a whole level [MQTT-4.7.1-3].
fn check_filter(filter: &str) -> Result<(), TopicRefusal> {
    if filter.is_empty() {
        return Err(TopicRefusal::Invalid("[MQTT-4.7.3-1] empty topic filter".into()));
    }
    if filter.contains('\0') {
        return Err(TopicRefusal::Invalid("[MQTT-4.7.3-2] topic filter contains U+0000".into()));
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !is_last) {
            return Err(TopicRefusal::Invalid("[MQTT-4.7.1-2] '#' must be the whole last level".into()));
        }
        if level.contains('+') && level != "+" {
            return Err(TopicRefusal::Invalid("[MQTT-4.7.1-3] '+' must be a whole level".into()));
        }
    }
    Ok(())
}

/// MQTT topic matching: `+` matches one level, `#` the parent level and any below it, and a
/// filter starting with a wildcard never matches a topic starting with `$` [MQTT-4.7.2-1].
/// `filter` is assumed valid (see [`filter_allowed`]).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let first_filter_level = filter.split('/').next().unwrap_or_default();
    if topic.starts_with('$') && matches!(first_filter_level, "+" | "#") {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for filter_level in filter.split('/') {
        if filter_level == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(topic_level) if filter_level == "+" || filter_level == topic_level => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// `$oc/devices/{id}/sys/commands/request_id={request_id}`.
pub fn command_topic(device_id: &str, request_id: &str) -> String {
    format!("{DEVICES_ROOT}{device_id}/{COMMAND}{request_id}")
}

/// `$oc/devices/{id}/sys/properties/set/request_id={request_id}`.
pub fn properties_set_topic(device_id: &str, request_id: &str) -> String {
    format!("{DEVICES_ROOT}{device_id}/{PROPERTIES_SET}{request_id}")
}

/// `$oc/devices/{id}/sys/properties/get/request_id={request_id}`.
pub fn properties_get_topic(device_id: &str, request_id: &str) -> String {
    format!("{DEVICES_ROOT}{device_id}/{PROPERTIES_GET}{request_id}")
}

/// `$oc/devices/{id}/sys/messages/down`.
pub fn messages_down_topic(device_id: &str) -> String {
    format!("{DEVICES_ROOT}{device_id}/{MESSAGES_DOWN}")
}

/// `$oc/devices/{id}/sys/shadow/get/response/request_id={request_id}`.
pub fn shadow_get_response_topic(device_id: &str, request_id: &str) -> String {
    format!("{DEVICES_ROOT}{device_id}/{SHADOW_GET_RESPONSE}{request_id}")
}

/// `$oc/devices/{id}/sys/events/down`.
pub fn events_down_topic(device_id: &str) -> String {
    format!("{DEVICES_ROOT}{device_id}/{EVENTS_DOWN}")
}

/// `$oc/devices/{id}/user/{suffix}`: where a message with a `topic` suffix goes (spec §1.5).
pub fn user_topic(device_id: &str, suffix: &str) -> String {
    format!("{DEVICES_ROOT}{device_id}/{USER}{suffix}")
}

/// Whether `topic` is a downlink system topic of `device_id`, to which the device is
/// implicitly subscribed at QoS 0 (spec §1.3).
pub fn is_implicit_system_topic(device_id: &str, topic: &str) -> bool {
    let Some(path) = topic
        .strip_prefix(DEVICES_ROOT)
        .and_then(|rest| rest.strip_prefix(device_id))
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return false;
    };
    matches!(path, MESSAGES_DOWN | EVENTS_DOWN)
        || DOWNLINK_WITH_REQUEST_ID.iter().any(|prefix| request_id_after(path, prefix).is_some())
}

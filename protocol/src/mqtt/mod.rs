//! The device side of IoTDA: MQTT framing, the device login and the topic ACL (spec §1).
//!
//! ## Layout
//! - [`codec`]: one [`Packet`](codec::Packet) type over MQTT 3.1, 3.1.1 and 5.0. Decoding sits
//!   on mqttbytes where it pays (CONNECT and PUBLISH, which carry v5 properties) and on a few
//!   strict hand-written readers elsewhere; every server-to-client packet is written by hand.
//! - [`login`]: the IoTDA clientId grammar `{device_id}_0_{sig}_{YYYYMMDDHH}`, the device
//!   password `HMAC-SHA256(key = timestamp, msg = secret)` and [`check_login`](login::check_login),
//!   which decides the CONNACK code.
//! - [`topic`]: the `$oc/devices/{id}/…` grammar — classifying what a device publishes,
//!   deciding which filters it may subscribe to, MQTT filter matching, and the downlink
//!   system topics.
//!
//! ## Flow
//! A shard feeds received bytes to [`codec::read_packet`] with `version = None` until the
//! CONNECT arrives; [`login::device_id_of`] routes it to the device's home shard, which runs
//! [`login::check_login`] and answers with [`codec::write_connack`]. From then on every packet
//! is decoded with the CONNECT's version; a PUBLISH goes through
//! [`topic::classify_uplink`], a SUBSCRIBE's filters through [`topic::filter_allowed`].
//!
//! ## Invariants
//! - Pure: no I/O, no clock reads (`now_unix_s` is passed in), no logging.
//! - `read_packet` returns `Ok(None)` only while a frame is incomplete, and then leaves the
//!   buffer untouched; an oversized frame is refused from its fixed header alone.
//! - Protocol errors name the clause they violate (`[MQTT-3.8.3-3]`).
//! - Passwords are compared only through [`crate::auth::constant_time_eq`]; no refusal
//!   reason carries the secret or the expected password.

pub mod codec;
pub mod login;
pub mod topic;

//! The fleet simulator: D devices, each one tokio task holding one MQTT 3.1.1 connection.
//!
//! A device logs in as IoTDA's device SDKs do (clientId `{device_id}_0_0_{YYYYMMDDHH}`,
//! password = HMAC-SHA256 keyed by that timestamp over the secret, clean session), never
//! subscribes on the engine (IoTDA's system topics are implicit), and answers every
//! `…/request_id={id}` it receives at once (or after `--think-us`) with a QoS 0 publish on
//! `…/response/request_id={id}`: `{"result_code":0}` for commands and property sets,
//! `{"services":[]}` for property gets. For the Mosquitto baseline the device also SUBSCRIBEs
//! to its command topic and, when the command carries `"reply_to":"T"`, answers on
//! `T/request_id={id}` instead (see bench/README.md for why). With a [`DownlinkLog`] in its
//! config a device also reports its login time, every publish on its `sys/messages/down`
//! topic and every command request it gets (the `messages` and `batch` scenarios).
//!
//! Connections are spread over source addresses 127.0.0.1, 127.0.0.2, … (a new one every
//! [`DEVICES_PER_SOURCE_ADDRESS`]) with IP_BIND_ADDRESS_NO_PORT, so the kernel picks the
//! source port per destination and one address never runs out of its ~28k ports. Logins run
//! with bounded concurrency; each reports its CONNECT→CONNACK time. With `--tls` the device
//! makes a full TLS handshake right after the TCP connect (no session resumption), and the
//! login's time includes it.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use bytes::BytesMut;
use mqttbytes::v4::{self, Packet};
use mqttbytes::QoS;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::downlink::DownlinkLog;
use crate::stats::LatencyHistogram;
use crate::transport::{Connection, Endpoint};

pub const PRODUCT_ID: &str = "bench";
pub const DEVICE_SECRET: &str = "benchsecret1";
pub const DEVICES_PER_SOURCE_ADDRESS: u64 = 20_000;
/// The largest packet a device accepts.
const PACKET_BYTES_MAX: usize = 64 * 1024;
const LOGIN_DEADLINE: Duration = Duration::from_secs(60);
const COMMAND_ANSWER: &[u8] = br#"{"result_code":0}"#;
const PROPERTIES_GET_ANSWER: &[u8] = br#"{"services":[]}"#;
const MESSAGES_DOWN_SUFFIX: &str = "/sys/messages/down";
const COMMANDS_INFIX: &str = "/sys/commands/request_id=";

pub fn node_id(index: u64) -> String {
    format!("n{index}")
}

pub fn device_id(index: u64) -> String {
    format!("{PRODUCT_ID}_n{index}")
}

/// A set of devices named by index, the index a client draws per call.
///
/// `Direct`: the fleet's own devices, index `k` being `bench_n{k}`. `SubDevices`: the
/// sub-devices behind the fleet's first G devices (their gateways), `per_gateway` each: index
/// `k` is sub-device `k % per_gateway` of gateway `k / per_gateway`, node `g{gateway}s{sub}`,
/// so a sub-device's id names its gateway and a rerun with other sizes never moves one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSet {
    Direct,
    SubDevices { per_gateway: u64 },
}

impl DeviceSet {
    pub fn node_id(self, index: u64) -> String {
        match self {
            DeviceSet::Direct => node_id(index),
            DeviceSet::SubDevices { per_gateway } => {
                format!("g{}s{}", index / per_gateway, index % per_gateway)
            }
        }
    }

    pub fn device_id(self, index: u64) -> String {
        format!("{PRODUCT_ID}_{}", self.node_id(index))
    }

    /// The fleet index of the gateway device `index` hangs under (sub-devices only).
    pub fn gateway_index(self, index: u64) -> Option<u64> {
        match self {
            DeviceSet::Direct => None,
            DeviceSet::SubDevices { per_gateway } => Some(index / per_gateway),
        }
    }

    /// `direct` or `sub_device`, as the result lines name it.
    pub fn kind(self) -> &'static str {
        match self {
            DeviceSet::Direct => "direct",
            DeviceSet::SubDevices { .. } => "sub_device",
        }
    }
}

/// The loopback source address of device `index`.
pub fn source_address(index: u64) -> Ipv4Addr {
    let offset = index / DEVICES_PER_SOURCE_ADDRESS;
    assert!(
        offset < 254,
        "more than {} devices do not fit in 127.0.0.0/24",
        254 * DEVICES_PER_SOURCE_ADDRESS
    );
    Ipv4Addr::new(127, 0, 0, 1 + offset as u8)
}

/// `{device_id}_0_0_{YYYYMMDDHH}` for the current UTC hour, and the password for `secret`.
pub fn iotda_credentials(device_id: &str, secret: &str) -> (String, String) {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64);
    let t1 = protocol::time::format_t1(now_ms); // yyyyMMddTHHmmssZ
    let timestamp = format!("{}{}", &t1[..8], &t1[9..11]);
    (format!("{device_id}_0_0_{timestamp}"), protocol::mqtt::login::device_password(secret, &timestamp))
}

/// The answer to a downlink publish: (topic, payload), or `None` if it asks for none.
pub fn answer_for(topic: &str, payload: &[u8]) -> Option<(String, &'static [u8])> {
    let marker = topic.rfind("/request_id=")?;
    let (prefix, request) = topic.split_at(marker);
    let answer = if prefix.ends_with("/sys/properties/get") { PROPERTIES_GET_ANSWER } else { COMMAND_ANSWER };
    let answer_topic = match reply_to(payload) {
        Some(reply_to) => format!("{reply_to}{request}"),
        None => format!("{prefix}/response{request}"),
    };
    Some((answer_topic, answer))
}

/// The value of a top-level `"reply_to":"…"` in a command payload (bench baseline only).
fn reply_to(payload: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"reply_to\":\"";
    let start = payload.windows(KEY.len()).position(|window| window == KEY)? + KEY.len();
    let length = payload[start..].iter().position(|&byte| byte == b'"')?;
    std::str::from_utf8(&payload[start..start + length]).ok()
}

/// How the fleet is built.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub devices: u64,
    /// The broker's MQTT address, plain or TLS.
    pub mqtt: Endpoint,
    pub keep_alive_s: u16,
    pub think: Duration,
    /// SUBSCRIBE to the command topic after login (brokers need it; the engine does not).
    pub subscribe_commands: bool,
    pub logins_in_flight_max: usize,
    /// Where the devices report what they receive, if anywhere.
    pub downlink: Option<Arc<DownlinkLog>>,
}

impl FleetConfig {
    /// A fleet for the engine: IoTDA logins, no SUBSCRIBE (the system topics are implicit),
    /// immediate answers, nothing recorded. Scenarios change what they need with `..`.
    pub fn for_engine(
        devices: u64,
        mqtt: Endpoint,
        keep_alive_s: u16,
        logins_in_flight_max: usize,
    ) -> FleetConfig {
        FleetConfig {
            devices,
            mqtt,
            keep_alive_s,
            think: Duration::ZERO,
            subscribe_commands: false,
            logins_in_flight_max,
            downlink: None,
        }
    }
}

/// How the logins went.
#[derive(Debug)]
pub struct LoginReport {
    pub accepted: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
    pub first_connect: Instant,
    pub last_connack: Instant,
    /// CONNECT sent → CONNACK (and SUBACK, when subscribing) received, per device.
    pub latency: LatencyHistogram,
}

impl LoginReport {
    pub fn elapsed(&self) -> Duration {
        self.last_connack.saturating_duration_since(self.first_connect)
    }
}

/// Live counters shared by the device tasks.
#[derive(Debug, Default)]
pub struct FleetCounters {
    pub answered: AtomicU64,
    pub disconnected: AtomicU64,
}

/// A logged-in fleet; dropping it (or [`Fleet::stop`]) closes every connection.
#[derive(Debug)]
pub struct Fleet {
    devices: Vec<JoinHandle<()>>,
    pub counters: Arc<FleetCounters>,
}

struct LoginOutcome {
    connect_sent: Instant,
    done: Instant,
    result: Result<(), String>,
}

impl Fleet {
    /// Connects and logs in every device; returns once each login has succeeded or failed.
    pub async fn start(config: FleetConfig) -> anyhow::Result<(Fleet, LoginReport)> {
        if config.devices == 0 {
            bail!("a fleet needs at least one device");
        }
        let counters = Arc::new(FleetCounters::default());
        let permits = Arc::new(Semaphore::new(config.logins_in_flight_max.max(1)));
        let (outcome_sender, mut outcomes) = mpsc::channel::<LoginOutcome>(1024);
        let config = Arc::new(config);
        let devices = (0..config.devices)
            .map(|index| {
                let device = Device { index, config: config.clone(), counters: counters.clone() };
                tokio::spawn(device.run(permits.clone(), outcome_sender.clone()))
            })
            .collect();
        drop(outcome_sender);

        let started = Instant::now();
        let mut report = LoginReport {
            accepted: 0,
            failed: 0,
            first_failure: None,
            first_connect: started + Duration::from_secs(3600),
            last_connack: started,
            latency: LatencyHistogram::new(),
        };
        while let Some(outcome) = outcomes.recv().await {
            report.first_connect = report.first_connect.min(outcome.connect_sent);
            report.last_connack = report.last_connack.max(outcome.done);
            match outcome.result {
                Ok(()) => {
                    report.accepted += 1;
                    report.latency.record_us((outcome.done - outcome.connect_sent).as_micros() as u64);
                }
                Err(error) => {
                    report.failed += 1;
                    report.first_failure.get_or_insert(error);
                }
            }
        }
        report.first_connect = report.first_connect.min(report.last_connack);
        Ok((Fleet { devices, counters }, report))
    }

    /// Closes every connection and waits until the tasks are gone.
    pub async fn stop(self) {
        for device in &self.devices {
            device.abort();
        }
        for device in self.devices {
            let _ = device.await;
        }
    }
}

struct Device {
    index: u64,
    config: Arc<FleetConfig>,
    counters: Arc<FleetCounters>,
}

impl Device {
    async fn run(self, permits: Arc<Semaphore>, outcomes: mpsc::Sender<LoginOutcome>) {
        let permit = permits.acquire_owned().await.expect("the login semaphore is never closed");
        let connect_sent = Instant::now();
        let login = tokio::time::timeout(LOGIN_DEADLINE, self.login()).await;
        let done = Instant::now();
        drop(permit);
        let (result, session) = match login {
            Ok(Ok(session)) => (Ok(()), Some(session)),
            Ok(Err(error)) => (Err(format!("{}: {error:#}", device_id(self.index))), None),
            Err(_) => (Err(format!("{}: no CONNACK within {LOGIN_DEADLINE:?}", device_id(self.index))), None),
        };
        if let (Ok(()), Some(log)) = (&result, &self.config.downlink) {
            log.connected(self.index, connect_sent);
        }
        let _ = outcomes.send(LoginOutcome { connect_sent, done, result }).await;
        drop(outcomes);
        if let Some((stream, buffer)) = session {
            if let Err(error) = self.serve(stream, buffer).await {
                if self.counters.disconnected.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("device {} disconnected: {error:#}", device_id(self.index));
                }
            }
        }
    }

    async fn connect_socket(&self) -> std::io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        let enable: libc::c_int = 1;
        // SAFETY: a valid socket fd and a pointer to a c_int of the size given.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&enable as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(std::io::Error::last_os_error());
        }
        socket.bind(SocketAddr::from((source_address(self.index), 0)))?;
        socket.set_nodelay(true)?;
        let stream = socket.connect(self.config.mqtt.address).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// TCP connect, TLS handshake (with `--tls`), CONNECT → CONNACK, and SUBSCRIBE → SUBACK
    /// when subscribing: all of it is the login the report times.
    async fn login(&self) -> anyhow::Result<(Connection, BytesMut)> {
        let mut stream = self.config.mqtt.secure(self.connect_socket().await?).await?;
        let device_id = device_id(self.index);
        let (client_id, password) = iotda_credentials(&device_id, DEVICE_SECRET);
        let mut connect = v4::Connect::new(client_id);
        connect.keep_alive = self.config.keep_alive_s;
        connect.clean_session = true;
        connect.set_login(device_id.clone(), password);
        let mut out = BytesMut::with_capacity(256);
        connect.write(&mut out).map_err(|error| anyhow::anyhow!("encoding CONNECT: {error:?}"))?;
        stream.send(&out).await?;
        let mut buffer = BytesMut::with_capacity(512);
        match next_packet(&mut stream, &mut buffer).await? {
            Packet::ConnAck(connack) if connack.code == v4::ConnectReturnCode::Success => {}
            Packet::ConnAck(connack) => bail!("CONNACK {:?}", connack.code),
            other => bail!("expected CONNACK, got {other:?}"),
        }
        if self.config.subscribe_commands {
            let mut subscribe =
                v4::Subscribe::new(format!("$oc/devices/{device_id}/sys/commands/#"), QoS::AtMostOnce);
            subscribe.pkid = 1;
            out.clear();
            subscribe.write(&mut out).map_err(|error| anyhow::anyhow!("encoding SUBSCRIBE: {error:?}"))?;
            stream.send(&out).await?;
            match next_packet(&mut stream, &mut buffer).await? {
                Packet::SubAck(_) => {}
                other => bail!("expected SUBACK, got {other:?}"),
            }
        }
        Ok((stream, buffer))
    }

    /// Answers downlink requests until the connection ends; pings every keep-alive / 2.
    async fn serve(&self, mut stream: Connection, mut buffer: BytesMut) -> anyhow::Result<()> {
        let ping_every = Duration::from_secs(u64::from(self.config.keep_alive_s.max(2)) / 2);
        let mut next_ping = Box::pin(tokio::time::sleep(ping_every));
        let mut out = BytesMut::with_capacity(256);
        loop {
            loop {
                match v4::read(&mut buffer, PACKET_BYTES_MAX) {
                    Ok(Packet::Publish(publish)) => {
                        if let Some(log) = &self.config.downlink {
                            if publish.topic.ends_with(MESSAGES_DOWN_SUFFIX) {
                                log.message(self.index, &publish.payload);
                            } else if publish.topic.contains(COMMANDS_INFIX) {
                                log.command();
                            }
                        }
                        if let Some((topic, payload)) = answer_for(&publish.topic, &publish.payload) {
                            if !self.config.think.is_zero() {
                                tokio::time::sleep(self.config.think).await;
                            }
                            out.clear();
                            v4::Publish::new(topic, QoS::AtMostOnce, payload)
                                .write(&mut out)
                                .map_err(|error| anyhow::anyhow!("encoding PUBLISH: {error:?}"))?;
                            stream.send(&out).await?;
                            self.counters.answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(_) => {}
                    Err(mqttbytes::Error::InsufficientBytes(_)) => break,
                    Err(error) => bail!("malformed packet from the server: {error:?}"),
                }
            }
            tokio::select! {
                read = stream.read_buf(&mut buffer) => {
                    if read? == 0 {
                        bail!("the server closed the connection");
                    }
                }
                () = &mut next_ping => {
                    out.clear();
                    v4::PingReq.write(&mut out).map_err(|error| anyhow::anyhow!("encoding PINGREQ: {error:?}"))?;
                    stream.send(&out).await?;
                    next_ping.as_mut().reset(tokio::time::Instant::now() + ping_every);
                }
            }
        }
    }
}

/// Reads until one whole packet is in `buffer` and returns it.
pub async fn next_packet(stream: &mut Connection, buffer: &mut BytesMut) -> anyhow::Result<Packet> {
    loop {
        match v4::read(buffer, PACKET_BYTES_MAX) {
            Ok(packet) => return Ok(packet),
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(error) => bail!("malformed packet: {error:?}"),
        }
        if stream.read_buf(buffer).await? == 0 {
            bail!("the server closed the connection");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_answered_on_the_response_topic() {
        let (topic, payload) =
            answer_for("$oc/devices/bench_n7/sys/commands/request_id=abc-1", br#"{"paras":{"n":1}}"#)
                .unwrap();
        assert_eq!(topic, "$oc/devices/bench_n7/sys/commands/response/request_id=abc-1");
        assert_eq!(payload, COMMAND_ANSWER);
    }

    #[test]
    fn property_calls_get_their_own_answers() {
        let (topic, payload) = answer_for("$oc/devices/d/sys/properties/get/request_id=9", b"{}").unwrap();
        assert_eq!(topic, "$oc/devices/d/sys/properties/get/response/request_id=9");
        assert_eq!(payload, PROPERTIES_GET_ANSWER);
        let (topic, payload) = answer_for("$oc/devices/d/sys/properties/set/request_id=9", b"{}").unwrap();
        assert_eq!(topic, "$oc/devices/d/sys/properties/set/response/request_id=9");
        assert_eq!(payload, COMMAND_ANSWER);
    }

    #[test]
    fn a_reply_to_field_redirects_the_answer() {
        let payload = br#"{"paras":{"n":1},"reply_to":"bench/3/response"}"#;
        let (topic, _) = answer_for("$oc/devices/d/sys/commands/request_id=3-17", payload).unwrap();
        assert_eq!(topic, "bench/3/response/request_id=3-17");
    }

    #[test]
    fn publishes_without_a_request_id_are_not_answered() {
        assert_eq!(answer_for("$oc/devices/d/sys/messages/down", b"hello"), None);
    }

    #[test]
    fn sub_devices_are_numbered_gateway_by_gateway() {
        let sub_devices = DeviceSet::SubDevices { per_gateway: 100 };
        assert_eq!(sub_devices.device_id(0), "bench_g0s0");
        assert_eq!(sub_devices.device_id(199), "bench_g1s99");
        assert_eq!(sub_devices.gateway_index(199).map(device_id), Some("bench_n1".to_owned()));
        assert_eq!(DeviceSet::Direct.device_id(7), device_id(7));
        assert_eq!(DeviceSet::Direct.gateway_index(7), None);
    }

    #[test]
    fn source_addresses_change_every_twenty_thousand_devices() {
        assert_eq!(source_address(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_address(19_999), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_address(20_000), Ipv4Addr::new(127, 0, 0, 2));
    }

    #[test]
    fn credentials_follow_the_iotda_client_id_format() {
        let (client_id, password) = iotda_credentials("bench_n1", DEVICE_SECRET);
        let (prefix, timestamp) = client_id.rsplit_once('_').unwrap();
        assert_eq!(prefix, "bench_n1_0_0");
        assert_eq!(timestamp.len(), 10);
        assert_eq!(password, protocol::mqtt::login::device_password(DEVICE_SECRET, timestamp));
    }
}

//! A blocking MQTT 3.1.1 device for tests, on a plain socket so every byte is visible, or
//! over TLS (rustls; [`crate::tls`]). Packets are encoded and decoded with mqttbytes (the
//! client side of the codec the engine wraps).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use mqttbytes::v4::{self, Packet};

/// The largest packet the test client reads.
const PACKET_BYTES_MAX: usize = 2 * 1024 * 1024;

/// `{device_id}_0_{signature_type}_{YYYYMMDDHH}` for the current UTC hour, and the password.
pub fn iotda_credentials(device_id: &str, secret: &str, signature_type: u8) -> (String, String) {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let t1 = protocol::time::format_t1(now_ms); // yyyyMMddTHHmmssZ
    let timestamp = format!("{}{}", &t1[..8], &t1[9..11]);
    let client_id = format!("{device_id}_0_{signature_type}_{timestamp}");
    (client_id, protocol::mqtt::login::device_password(secret, &timestamp))
}

/// A CONNECT as IoTDA's device SDKs send it (clean session, keep-alive 120 s).
pub fn iotda_connect(device_id: &str, secret: &str, signature_type: u8) -> v4::Connect {
    let (client_id, password) = iotda_credentials(device_id, secret, signature_type);
    let mut connect = v4::Connect::new(client_id);
    connect.keep_alive = 120;
    connect.set_login(device_id.to_owned(), password);
    connect
}

/// A device's connection: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum DeviceStream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl DeviceStream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            DeviceStream::Plain(stream) => stream,
            DeviceStream::Tls(stream) => stream.get_ref(),
        }
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }

    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.tcp().set_write_timeout(timeout)
    }
}

impl Read for DeviceStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            DeviceStream::Plain(stream) => stream.read(buf),
            DeviceStream::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for DeviceStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            DeviceStream::Plain(stream) => stream.write(buf),
            DeviceStream::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            DeviceStream::Plain(stream) => stream.flush(),
            DeviceStream::Tls(stream) => stream.flush(),
        }
    }
}

/// A readable stream whose reads can be given a timeout.
pub trait TimedRead: Read {
    fn set_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
}

impl TimedRead for TcpStream {
    fn set_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(timeout)
    }
}

impl TimedRead for DeviceStream {
    fn set_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(timeout)
    }
}

/// Reads what arrives before `deadline` onto `buffer`; `false` on EOF, error or timeout.
pub fn read_more(stream: &mut impl TimedRead, buffer: &mut BytesMut, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return false;
    }
    stream.set_timeout(Some(left)).unwrap();
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(read) => {
            buffer.extend_from_slice(&chunk[..read]);
            true
        }
    }
}

/// One device connection.
#[derive(Debug)]
pub struct MqttDevice {
    pub stream: DeviceStream,
    buffer: BytesMut,
}

impl MqttDevice {
    pub fn open(address: SocketAddr) -> MqttDevice {
        let stream = TcpStream::connect(address).expect("connecting to the MQTT listener");
        stream.set_nodelay(true).unwrap();
        MqttDevice { stream: DeviceStream::Plain(stream), buffer: BytesMut::new() }
    }

    /// A TLS connection with its handshake done; `Err` says why the handshake failed.
    pub fn open_tls(address: SocketAddr, tls: &crate::tls::TlsClient) -> Result<MqttDevice, String> {
        let mut tcp = TcpStream::connect(address).map_err(|e| format!("connecting: {e}"))?;
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut connection = tls.connection()?;
        while connection.is_handshaking() {
            connection.complete_io(&mut tcp).map_err(|e| format!("TLS handshake: {e}"))?;
        }
        let stream = DeviceStream::Tls(Box::new(rustls::StreamOwned::new(connection, tcp)));
        Ok(MqttDevice { stream, buffer: BytesMut::new() })
    }

    /// [`MqttDevice::connect`] over TLS: the CONNACK code, or why there was none (a failed
    /// handshake, or the connection closed without a CONNACK).
    pub fn connect_tls(
        address: SocketAddr,
        tls: &crate::tls::TlsClient,
        connect: &v4::Connect,
    ) -> Result<(MqttDevice, u8), String> {
        let mut device = MqttDevice::open_tls(address, tls)?;
        let mut out = BytesMut::new();
        connect.write(&mut out).unwrap();
        device.try_send_raw(&out).map_err(|e| format!("sending CONNECT: {e}"))?;
        match device.poll(Duration::from_secs(20)) {
            Polled::Packet(Packet::ConnAck(connack)) => {
                let code = connack.code as u8;
                Ok((device, code))
            }
            other => Err(format!("no CONNACK: {other:?}")),
        }
    }

    /// Logs an IoTDA device in over TLS and asserts the CONNACK accepted it.
    pub fn login_tls(
        address: SocketAddr,
        tls: &crate::tls::TlsClient,
        device_id: &str,
        secret: &str,
    ) -> MqttDevice {
        let connect = iotda_connect(device_id, secret, 1);
        let (device, code) =
            MqttDevice::connect_tls(address, tls, &connect).unwrap_or_else(|e| panic!("{device_id}: {e}"));
        assert_eq!(code, 0, "TLS login of {device_id} refused");
        device
    }

    /// Sends `connect` and returns the CONNACK's return code (0 = accepted).
    pub fn connect(address: SocketAddr, connect: &v4::Connect) -> (MqttDevice, u8) {
        let mut device = MqttDevice::open(address);
        let mut out = BytesMut::new();
        connect.write(&mut out).unwrap();
        device.send_raw(&out);
        match device.next_packet(Duration::from_secs(20)) {
            Some(Packet::ConnAck(connack)) => {
                let code = connack.code as u8;
                (device, code)
            }
            other => panic!("expected a CONNACK, got {other:?}"),
        }
    }

    /// Logs an IoTDA device in and asserts the CONNACK accepted it.
    pub fn login(address: SocketAddr, device_id: &str, secret: &str) -> MqttDevice {
        let (device, code) = MqttDevice::connect(address, &iotda_connect(device_id, secret, 1));
        assert_eq!(code, 0, "login of {device_id} refused");
        device
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writing to the engine");
    }

    pub fn send(&mut self, packet: impl FnOnce(&mut BytesMut)) {
        let mut out = BytesMut::new();
        packet(&mut out);
        self.send_raw(&out);
    }

    /// The next packet, or `None` if the engine closed the connection (or nothing came
    /// within `timeout`, which the caller tells apart with [`MqttDevice::is_closed_within`]).
    pub fn next_packet(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            match v4::read(&mut self.buffer, PACKET_BYTES_MAX) {
                Ok(packet) => return Some(packet),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(error) => panic!("the engine sent a malformed packet: {error:?}"),
            }
            if !read_more(&mut self.stream, &mut self.buffer, deadline) {
                return None;
            }
        }
    }

    /// Whether the engine closes the connection within `timeout` (EOF or reset).
    pub fn is_closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    /// PINGREQ, and whether a PINGRESP came back.
    pub fn ping(&mut self) -> bool {
        self.send(|out| {
            v4::PingReq.write(out).unwrap();
        });
        matches!(self.next_packet(Duration::from_secs(10)), Some(Packet::PingResp))
    }
}

impl MqttDevice {
    /// Publishes `payload` on `topic` at QoS 0, or at QoS 1 with `packet_id` and then asserts
    /// the PUBACK (so nothing else may be due to arrive first).
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: mqttbytes::QoS, packet_id: u16) {
        self.send(|out| {
            let mut publish = v4::Publish::new(topic, qos, payload.to_vec());
            publish.pkid = if qos == mqttbytes::QoS::AtMostOnce { 0 } else { packet_id };
            publish.write(out).unwrap();
        });
        if qos != mqttbytes::QoS::AtMostOnce {
            match self.next_packet(Duration::from_secs(10)) {
                Some(Packet::PubAck(ack)) => assert_eq!(ack.pkid, packet_id, "PUBACK of another packet"),
                other => panic!("expected PUBACK {packet_id} on {topic}, got {other:?}"),
            }
        }
    }

    /// The next PUBLISH within `timeout`, `None` if none came (or the connection closed);
    /// panics on any other packet.
    pub fn next_publish(&mut self, timeout: Duration) -> Option<v4::Publish> {
        match self.next_packet(timeout) {
            Some(Packet::Publish(publish)) => Some(publish),
            None => None,
            Some(other) => panic!("expected a PUBLISH, got {other:?}"),
        }
    }
}

/// The request id a downlink topic ends with (`…/request_id={id}`).
pub fn request_id_of(topic: &str) -> &str {
    topic.rsplit_once("request_id=").map(|(_, id)| id).unwrap_or_else(|| panic!("no request_id in {topic}"))
}

impl MqttDevice {
    /// SUBSCRIBEs to `filter` at `qos` with `packet_id` and waits for a SUBACK granting exactly
    /// `qos`. Returns the PUBLISHes that arrived before the SUBACK (a server may start sending
    /// matching messages first); panics on any other packet.
    pub fn subscribe(&mut self, filter: &str, qos: mqttbytes::QoS, packet_id: u16) -> Vec<v4::Publish> {
        self.send(|out| {
            let mut subscribe = v4::Subscribe::new(filter, qos);
            subscribe.pkid = packet_id;
            subscribe.write(out).unwrap();
        });
        let mut early = Vec::new();
        loop {
            match self.next_packet(Duration::from_secs(10)) {
                Some(Packet::SubAck(ack)) => {
                    assert_eq!(ack.pkid, packet_id, "SUBACK of another packet");
                    assert_eq!(
                        ack.return_codes,
                        vec![v4::SubscribeReasonCode::Success(qos)],
                        "SUBACK of {filter} at {qos:?}"
                    );
                    return early;
                }
                Some(Packet::Publish(publish)) => early.push(publish),
                other => panic!("expected the SUBACK of {filter}, got {other:?}"),
            }
        }
    }

    /// Acknowledges a QoS 1 PUBLISH.
    pub fn puback(&mut self, packet_id: u16) {
        self.send(|out| {
            v4::PubAck::new(packet_id).write(out).unwrap();
        });
    }

    /// Sends DISCONNECT and asserts the engine closes the connection.
    pub fn disconnect(&mut self) {
        self.send(|out| {
            v4::Disconnect.write(out).unwrap();
        });
        assert!(self.is_closed_within(Duration::from_secs(10)), "DISCONNECT closes the connection");
    }

    /// Exactly the next `count` PUBLISHes, each within `timeout` of the previous one; panics
    /// (showing those received) if fewer come or another packet comes.
    pub fn publishes(&mut self, count: usize, timeout: Duration) -> Vec<v4::Publish> {
        let mut received = Vec::with_capacity(count);
        while received.len() < count {
            match self.next_publish(timeout) {
                Some(publish) => received.push(publish),
                None => {
                    let topics: Vec<&str> = received.iter().map(|p| p.topic.as_str()).collect();
                    panic!("expected {count} PUBLISHes, got {}: {topics:?}", received.len());
                }
            }
        }
        received
    }
}

impl MqttDevice {
    /// Answers the commands `device_id` is sent (`$oc/devices/{device_id}/sys/commands/
    /// request_id={id}`) with `reply` at QoS 0, one by one, until it answered `count` of them or
    /// no PUBLISH came within `idle` (or the connection closed). Returns the commands it
    /// answered; panics on a PUBLISH on another topic.
    pub fn answer_commands(
        &mut self,
        device_id: &str,
        reply: &[u8],
        count: usize,
        idle: Duration,
    ) -> Vec<v4::Publish> {
        let prefix = format!("$oc/devices/{device_id}/sys/commands/request_id=");
        let mut answered = Vec::new();
        while answered.len() < count {
            let Some(command) = self.next_publish(idle) else { break };
            assert!(command.topic.starts_with(&prefix), "{device_id}: not a command: {}", command.topic);
            let request_id = request_id_of(&command.topic);
            let topic = format!("$oc/devices/{device_id}/sys/commands/response/request_id={request_id}");
            self.publish(&topic, reply, mqttbytes::QoS::AtMostOnce, 0);
            answered.push(command);
        }
        answered
    }
}

/// What [`MqttDevice::poll`] found.
#[derive(Debug)]
pub enum Polled {
    Packet(Packet),
    /// Nothing within the timeout; the connection is still open.
    Idle,
    /// EOF, a reset, or a malformed packet: the connection is unusable.
    Closed,
}

impl MqttDevice {
    /// Logs an IoTDA device in like [`MqttDevice::login`], but reports a refused connection or
    /// login instead of panicking (for devices that reconnect to a restarting engine).
    pub fn try_login(address: SocketAddr, device_id: &str, secret: &str) -> Result<MqttDevice, String> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .map_err(|error| format!("connecting: {error}"))?;
        stream.set_nodelay(true).map_err(|error| format!("TCP_NODELAY: {error}"))?;
        let mut device = MqttDevice { stream: DeviceStream::Plain(stream), buffer: BytesMut::new() };
        let mut out = BytesMut::new();
        iotda_connect(device_id, secret, 1).write(&mut out).map_err(|error| format!("{error:?}"))?;
        device.try_send_raw(&out).map_err(|error| format!("sending CONNECT: {error}"))?;
        match device.poll(Duration::from_secs(20)) {
            Polled::Packet(Packet::ConnAck(connack)) if connack.code as u8 == 0 => Ok(device),
            other => Err(format!("no accepting CONNACK: {other:?}")),
        }
    }

    /// Writes `bytes`, reporting an error instead of panicking.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next packet within `timeout`, telling a quiet connection from a closed one.
    pub fn poll(&mut self, timeout: Duration) -> Polled {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        loop {
            match v4::read(&mut self.buffer, PACKET_BYTES_MAX) {
                Ok(packet) => return Polled::Packet(packet),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(_) => return Polled::Closed,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Polled::Idle;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return Polled::Closed,
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Polled::Idle
                }
                Err(_) => return Polled::Closed,
            }
        }
    }
}

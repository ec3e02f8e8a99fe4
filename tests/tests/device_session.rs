//! MQTT session lifetime and MQTT 5.0 devices (spec §1.1-1.3): a silent connection is closed at
//! 1.5 × its keep-alive and not before (a 5.0 one gets DISCONNECT 0x8D first), the device then
//! goes OFFLINE, while a device that pings stays up; a 5.0 login gets its CONNACK reason codes
//! (0x00, 0x86, 0x85), and a 5.0 uplink outside the topic ACL gets PUBACK 0x87 and the
//! connection stays open.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqttbytes::v4;
use mqttbytes::v5::{self, ConnectReturnCode, DisconnectReasonCode, PubAckReason};
use mqttbytes::QoS;
use tests::mqtt::{iotda_connect, iotda_credentials, MqttDevice};
use tests::{Client, Engine, EngineOptions};

const SECRET: &str = "device-secret-1";
/// The shortest keep-alive the spec allows, so the expiry comes soonest: 1.5 × 30 s = 45 s.
const KEEP_ALIVE_S: u16 = 30;
/// The largest packet the v5 test client reads.
const PACKET_BYTES_MAX: usize = 2 * 1024 * 1024;

fn register<S: AsRef<str>>(client: &Client, node_ids: &[S]) {
    tests::register_meter_devices(client, node_ids, SECRET);
}

/// An IoTDA CONNECT in MQTT 5.0 (clean start, signature type 1).
fn v5_connect(device_id: &str, secret: &str, keep_alive: u16) -> v5::Connect {
    let (client_id, password) = iotda_credentials(device_id, secret, 1);
    let mut connect = v5::Connect::new(client_id);
    connect.keep_alive = keep_alive;
    connect.set_login(device_id.to_owned(), password);
    connect
}

/// A blocking MQTT 5.0 device on a plain socket.
struct V5Device {
    stream: TcpStream,
    buffer: BytesMut,
}

impl V5Device {
    /// Sends `connect` and returns the CONNACK.
    fn connect(address: SocketAddr, connect: &v5::Connect) -> (V5Device, v5::ConnAck) {
        let stream = TcpStream::connect(address).expect("connecting to the MQTT listener");
        stream.set_nodelay(true).unwrap();
        let mut device = V5Device { stream, buffer: BytesMut::new() };
        device.send(|out| {
            connect.write(out).unwrap();
        });
        match device.next_packet(Duration::from_secs(20)) {
            Some(v5::Packet::ConnAck(connack)) => (device, connack),
            other => panic!("expected a CONNACK, got {other:?}"),
        }
    }

    /// Logs an IoTDA device in and asserts the CONNACK accepted it.
    fn login(address: SocketAddr, device_id: &str, keep_alive: u16) -> V5Device {
        let (device, connack) = V5Device::connect(address, &v5_connect(device_id, SECRET, keep_alive));
        assert_eq!(connack.code, ConnectReturnCode::Success, "login of {device_id} refused");
        device
    }

    fn send(&mut self, packet: impl FnOnce(&mut BytesMut)) {
        let mut out = BytesMut::new();
        packet(&mut out);
        self.stream.write_all(&out).expect("writing to the engine");
    }

    /// The next packet, or `None` if the engine closed the connection or nothing came within
    /// `timeout`.
    fn next_packet(&mut self, timeout: Duration) -> Option<v5::Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            match v5::read(&mut self.buffer, PACKET_BYTES_MAX) {
                Ok(packet) => return Some(packet),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(error) => panic!("the engine sent a malformed packet: {error:?}"),
            }
            if !tests::mqtt::read_more(&mut self.stream, &mut self.buffer, deadline) {
                return None;
            }
        }
    }

    /// Whether the engine closes the connection within `timeout` with nothing more sent.
    fn is_closed_within(&mut self, timeout: Duration) -> bool {
        if timeout.is_zero() {
            return false;
        }
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => true,
            Ok(read) => panic!("expected the connection to close, got bytes {:02x?}", &chunk[..read]),
            Err(error) => {
                !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
            }
        }
    }

    fn ping(&mut self) -> bool {
        self.send(|out| {
            v5::PingReq.write(out).unwrap();
        });
        matches!(self.next_packet(Duration::from_secs(10)), Some(v5::Packet::PingResp))
    }

    /// A QoS 1 PUBLISH and the PUBACK's reason code.
    fn publish_qos1(&mut self, topic: &str, pkid: u16) -> PubAckReason {
        self.send(|out| {
            let mut publish = v5::Publish::new(topic, QoS::AtLeastOnce, b"{}".to_vec());
            publish.pkid = pkid;
            publish.write(out).unwrap();
        });
        match self.next_packet(Duration::from_secs(10)) {
            Some(v5::Packet::PubAck(puback)) => {
                assert_eq!(puback.pkid, pkid, "the PUBACK names the PUBLISH");
                puback.reason
            }
            other => panic!("expected a PUBACK for {topic}, got {other:?}"),
        }
    }
}

/// Three devices with a 30 s keep-alive on one engine, side by side so the test lasts one
/// expiry: a silent 3.1.1 device, a silent 5.0 device, and a 3.1.1 device pinging every 10 s.
#[test]
fn a_silent_connection_expires_at_one_and_a_half_keep_alives_and_a_pinging_one_does_not() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    register(&client, &["silent", "silent5", "pinger"]);
    let address = engine.mqtt;
    let expiry = Duration::from_secs(u64::from(KEEP_ALIVE_S) * 3 / 2);
    // Not before 45 s (less a little: the engine arms its timer before the CONNACK arrives here),
    // and not much after.
    let earliest = expiry - Duration::from_millis(500);
    let latest = Duration::from_secs(70);

    let silent = thread::spawn(move || {
        let connect = v4::Connect { keep_alive: KEEP_ALIVE_S, ..iotda_connect("meter_silent", SECRET, 1) };
        let (mut device, code) = MqttDevice::connect(address, &connect);
        assert_eq!(code, 0, "keep-alive {KEEP_ALIVE_S} s is accepted");
        let logged_in = Instant::now();
        assert!(!device.is_closed_within(Duration::from_secs(20)), "3.1.1: cut after less than 20 s");
        assert!(device.is_closed_within(latest.saturating_sub(logged_in.elapsed())), "3.1.1: never cut");
        logged_in.elapsed()
    });
    let silent5 = thread::spawn(move || {
        let mut device = V5Device::login(address, "meter_silent5", KEEP_ALIVE_S);
        let logged_in = Instant::now();
        assert!(device.next_packet(Duration::from_secs(20)).is_none(), "5.0: cut after less than 20 s");
        let packet = device.next_packet(latest.saturating_sub(logged_in.elapsed()));
        let cut = logged_in.elapsed();
        match packet {
            Some(v5::Packet::Disconnect(disconnect)) => {
                assert_eq!(disconnect.reason_code, DisconnectReasonCode::KeepAliveTimeout)
            }
            other => panic!("5.0: expected DISCONNECT 0x8D, got {other:?} after {cut:?}"),
        }
        assert!(device.is_closed_within(Duration::from_secs(10)), "5.0: closed after its DISCONNECT");
        cut
    });
    let pinger = thread::spawn(move || {
        let connect = v4::Connect { keep_alive: KEEP_ALIVE_S, ..iotda_connect("meter_pinger", SECRET, 1) };
        let (mut device, code) = MqttDevice::connect(address, &connect);
        assert_eq!(code, 0);
        let logged_in = Instant::now();
        // Pings at 10, 20, …, 60 s: well past the 45 s a silent connection gets.
        for round in 1..=6 {
            let next = Duration::from_secs(10 * round);
            assert!(
                !device.is_closed_within(next.saturating_sub(logged_in.elapsed())),
                "the pinging device was cut after {:?}",
                logged_in.elapsed()
            );
            assert!(device.ping(), "PINGREQ {round} is answered");
        }
        device
    });

    let silent_cut = silent.join().expect("the silent 3.1.1 device");
    let silent5_cut = silent5.join().expect("the silent 5.0 device");
    for (name, cut) in [("3.1.1", silent_cut), ("5.0", silent5_cut)] {
        assert!(cut >= earliest, "{name}: cut after {cut:?}, before 1.5 × {KEEP_ALIVE_S} s");
    }
    tests::await_status(&client, "meter_silent", "OFFLINE");
    tests::await_status(&client, "meter_silent5", "OFFLINE");
    let mut pinger = pinger.join().expect("the pinging device");
    assert!(pinger.ping(), "still served");
    tests::await_status(&client, "meter_pinger", "ONLINE");
}

#[test]
fn mqtt5_logins_get_reason_codes_and_a_refused_uplink_keeps_the_connection() {
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    register(&client, &["n1", "n2"]);

    let refusals = [
        (
            "wrong password",
            v5_connect("meter_n1", "not-the-secret", 120),
            ConnectReturnCode::BadUserNamePassword,
        ),
        ("unknown device", v5_connect("meter_nobody", SECRET, 120), ConnectReturnCode::BadUserNamePassword),
        (
            "keep-alive below 30 s",
            v5_connect("meter_n1", SECRET, 10),
            ConnectReturnCode::ClientIdentifierNotValid,
        ),
        (
            "malformed clientId",
            v5::Connect { client_id: "meter_n1".into(), ..v5_connect("meter_n1", SECRET, 120) },
            ConnectReturnCode::ClientIdentifierNotValid,
        ),
    ];
    for (case, connect, expected) in refusals {
        let (mut device, connack) = V5Device::connect(engine.mqtt, &connect);
        assert_eq!(connack.code, expected, "{case}");
        assert!(device.is_closed_within(Duration::from_secs(10)), "{case}: the connection is closed");
    }
    assert_eq!(client.get("devices/meter_n1").json()["status"], "INACTIVE", "no refused login activates it");

    let (mut device, connack) = V5Device::connect(engine.mqtt, &v5_connect("meter_n1", SECRET, 120));
    assert_eq!(connack.code, ConnectReturnCode::Success);
    assert!(!connack.session_present, "sessions are not kept");
    let properties = connack.properties.expect("an accepting v5 CONNACK says what the server lacks");
    assert_eq!(properties.max_qos, Some(1), "QoS 2 is not supported");
    assert_eq!(properties.retain_available, Some(0), "retained messages are not supported");
    assert!(device.ping(), "PINGREQ is answered");
    tests::await_status(&client, "meter_n1", "ONLINE");

    assert_eq!(device.publish_qos1("$oc/devices/meter_n1/sys/messages/up", 1), PubAckReason::Success);
    assert_eq!(
        device.publish_qos1("$oc/devices/meter_n2/sys/messages/up", 2),
        PubAckReason::NotAuthorized,
        "another device's topic"
    );
    assert!(device.ping(), "a refused 5.0 uplink leaves the connection open");
    // A QoS 0 uplink outside the ACL has no PUBACK to refuse it: it is dropped.
    device.send(|out| {
        v5::Publish::new("$oc/devices/meter_n2/sys/messages/up", QoS::AtMostOnce, b"x".to_vec())
            .write(out)
            .unwrap();
    });
    assert!(device.ping(), "and so does a dropped QoS 0 one");
    assert_eq!(device.publish_qos1("$oc/devices/meter_n1/sys/messages/up", 3), PubAckReason::Success);

    // QoS 2 is not supported: DISCONNECT 0x82 (protocol error), then the connection closes.
    device.send(|out| {
        let mut publish =
            v5::Publish::new("$oc/devices/meter_n1/sys/messages/up", QoS::ExactlyOnce, b"{}".to_vec());
        publish.pkid = 4;
        publish.write(out).unwrap();
    });
    match device.next_packet(Duration::from_secs(10)) {
        Some(v5::Packet::Disconnect(disconnect)) => {
            assert_eq!(disconnect.reason_code, DisconnectReasonCode::ProtocolError)
        }
        other => panic!("expected DISCONNECT 0x82 after a QoS 2 PUBLISH, got {other:?}"),
    }
    assert!(device.is_closed_within(Duration::from_secs(10)));
    tests::await_status(&client, "meter_n1", "OFFLINE");
}

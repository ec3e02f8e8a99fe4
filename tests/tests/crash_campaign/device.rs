//! A simulated online device, one thread each: logged in and subscribed to its downlink topic at
//! QoS 1 before the load starts, it reports properties at QoS 1 (one in flight at a time,
//! values 1, 2, 3, …), records the `id` of every downlink message it receives (PUBACKing each
//! QoS 1 one at once), and answers every command with `{"result_code":0}` — or, if it is a
//! mute device, none (its batch targets wait for the command timeout).
//!
//! When the engine dies under it, it reconnects like a real device (every
//! [`RECONNECT_INTERVAL`]) until the engine is back, subscribes again and keeps receiving — but
//! never reports again, so the shadow the campaign checks holds only values sent before the
//! kill.
//!
//! Invariants the checks rely on:
//! - `report_acked <= report_sent`, and nothing above `report_sent` was ever sent.
//! - `received` is every downlink arrival in order, duplicates included.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqttbytes::v4::{self, Packet};
use mqttbytes::QoS;
use serde_json::{json, Value};
use tests::messages::down_topic;
use tests::mqtt::{request_id_of, MqttDevice, Polled};

use crate::rng::Rng;

pub const SECRET: &str = "campaign-secret-1";
const RECONNECT_INTERVAL: Duration = Duration::from_millis(20);
/// The longest a device thread lives: a bound on its loop, far above a cycle.
const LIFETIME_MAX: Duration = Duration::from_secs(600);
const POLL_INTERVAL: Duration = Duration::from_millis(10);
const SUBSCRIBE_PACKET_ID: u16 = 1;

/// What a device saw, read by the checks once the device has stopped reporting.
#[derive(Debug, Default)]
pub struct DeviceRecord {
    /// The `id` of every downlink message, in arrival order, duplicates kept.
    pub received: Vec<String>,
    /// The last report value the engine PUBACKed.
    pub report_acked: Option<u64>,
    /// The last report value sent (acknowledged or not).
    pub report_sent: Option<u64>,
    pub commands_answered: u64,
    /// When the device logged in again after losing its connection.
    pub reconnected_at: Option<Instant>,
}

/// Switches shared by every device of a cycle.
#[derive(Debug, Default)]
pub struct Control {
    /// Set once the load is over: the devices disconnect and their threads end.
    pub stop: AtomicBool,
}

#[derive(Debug)]
pub struct SimulatedDevice {
    pub device_id: String,
    pub record: Arc<Mutex<DeviceRecord>>,
    thread: JoinHandle<()>,
}

impl SimulatedDevice {
    /// Logs the device in, subscribes at QoS 1 (asserting both: the engine is up), and starts
    /// its thread.
    pub fn start(
        mqtt: SocketAddr,
        device_id: &str,
        answers_commands: bool,
        control: Arc<Control>,
        rng: Rng,
    ) -> SimulatedDevice {
        let mut device = MqttDevice::login(mqtt, device_id, SECRET);
        let early = device.subscribe(&down_topic(device_id), QoS::AtLeastOnce, SUBSCRIBE_PACKET_ID);
        assert!(early.is_empty(), "{device_id}: a message before any was created: {early:?}");
        let record = Arc::new(Mutex::new(DeviceRecord::default()));
        let mut life = DeviceLife {
            mqtt,
            device_id: device_id.to_owned(),
            record: record.clone(),
            control,
            rng,
            answers_commands,
            reporting: true,
            report_in_flight: None,
            next_report_at: Instant::now(),
            next_packet_id: SUBSCRIBE_PACKET_ID + 1,
        };
        let thread = thread::spawn(move || life.run(device));
        SimulatedDevice { device_id: device_id.to_owned(), record, thread }
    }

    /// Waits for the thread (after [`Control::stop`]).
    pub fn join(self) {
        self.thread.join().expect("a device thread panicked");
    }
}

struct DeviceLife {
    mqtt: SocketAddr,
    device_id: String,
    record: Arc<Mutex<DeviceRecord>>,
    control: Arc<Control>,
    rng: Rng,
    answers_commands: bool,
    /// Cleared for good at the first lost connection.
    reporting: bool,
    /// (packet id, value) of the report awaiting its PUBACK.
    report_in_flight: Option<(u16, u64)>,
    next_report_at: Instant,
    next_packet_id: u16,
}

impl DeviceLife {
    fn run(&mut self, device: MqttDevice) {
        let mut connection = Some(device);
        let deadline = Instant::now() + LIFETIME_MAX;
        while Instant::now() < deadline && !self.control.stop.load(Ordering::SeqCst) {
            connection = match connection.take() {
                Some(mut device) => self.serve(&mut device).then_some(device),
                None => self.reconnect(),
            };
            if connection.is_none() {
                self.reporting = false;
                self.report_in_flight = None;
            }
        }
        if let Some(mut device) = connection {
            let mut out = BytesMut::new();
            v4::Disconnect.write(&mut out).expect("encoding DISCONNECT");
            let _ = device.try_send_raw(&out);
        }
    }

    fn reconnect(&mut self) -> Option<MqttDevice> {
        match MqttDevice::try_login(self.mqtt, &self.device_id, SECRET) {
            Ok(mut device) => {
                self.record.lock().unwrap().reconnected_at = Some(Instant::now());
                let mut subscribe = v4::Subscribe::new(down_topic(&self.device_id), QoS::AtLeastOnce);
                subscribe.pkid = SUBSCRIBE_PACKET_ID;
                let mut out = BytesMut::new();
                subscribe.write(&mut out).expect("encoding SUBSCRIBE");
                device.try_send_raw(&out).ok().map(|()| device)
            }
            Err(_) => {
                // The engine is not back yet: try again shortly, like a device's back-off.
                thread::sleep(RECONNECT_INTERVAL);
                None
            }
        }
    }

    /// One step on an open connection; `false` once it is lost.
    fn serve(&mut self, device: &mut MqttDevice) -> bool {
        if self.reporting && self.report_in_flight.is_none() && Instant::now() >= self.next_report_at {
            let value = self.record.lock().unwrap().report_sent.map_or(1, |sent| sent + 1);
            let packet_id = self.take_packet_id();
            let report = json!({"services": [{"service_id": "water", "properties": {"level": value}}]});
            let topic = format!("$oc/devices/{}/sys/properties/report", self.device_id);
            let mut publish = v4::Publish::new(topic, QoS::AtLeastOnce, report.to_string().into_bytes());
            publish.pkid = packet_id;
            self.record.lock().unwrap().report_sent = Some(value);
            if !send(device, |out| publish.write(out)) {
                return false;
            }
            self.report_in_flight = Some((packet_id, value));
        }
        match device.poll(POLL_INTERVAL) {
            Polled::Idle => true,
            Polled::Closed => false,
            Polled::Packet(Packet::Publish(publish)) => self.on_publish(device, &publish),
            Polled::Packet(Packet::PubAck(ack)) => {
                if let Some((packet_id, value)) = self.report_in_flight {
                    if ack.pkid == packet_id {
                        self.record.lock().unwrap().report_acked = Some(value);
                        self.report_in_flight = None;
                        self.next_report_at = Instant::now() + self.rng.duration_ms(20, 120);
                    }
                }
                true
            }
            Polled::Packet(_) => true,
        }
    }

    fn on_publish(&mut self, device: &mut MqttDevice, publish: &v4::Publish) -> bool {
        if publish.topic == down_topic(&self.device_id) {
            let payload: Value = serde_json::from_slice(&publish.payload).unwrap_or(Value::Null);
            let id = payload["id"].as_str().map_or_else(|| format!("<no id: {payload}>"), str::to_owned);
            self.record.lock().unwrap().received.push(id);
            if publish.qos == QoS::AtLeastOnce {
                return send(device, |out| v4::PubAck::new(publish.pkid).write(out));
            }
            return true;
        }
        if self.answers_commands && publish.topic.contains("/sys/commands/request_id=") {
            let request_id = request_id_of(&publish.topic);
            let topic =
                format!("$oc/devices/{}/sys/commands/response/request_id={request_id}", self.device_id);
            let answer = v4::Publish::new(topic, QoS::AtMostOnce, br#"{"result_code":0}"#.to_vec());
            self.record.lock().unwrap().commands_answered += 1;
            return send(device, |out| answer.write(out));
        }
        true
    }

    fn take_packet_id(&mut self) -> u16 {
        let packet_id = self.next_packet_id;
        self.next_packet_id = if packet_id == u16::MAX { SUBSCRIBE_PACKET_ID + 1 } else { packet_id + 1 };
        packet_id
    }
}

/// Encodes one packet and writes it; `false` if the connection is gone.
fn send(
    device: &mut MqttDevice,
    encode: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>,
) -> bool {
    let mut out = BytesMut::new();
    encode(&mut out).expect("encoding a packet");
    device.try_send_raw(&out).is_ok()
}

//! Every device session's end is logged once, at info, with the reason that ended it
//! (regression: a takeover, a delete and a hang-up all read "closed by the client or taken
//! over", and a clean DISCONNECT was not said at info at all).

use std::time::Duration;

use mqttbytes::v4;
use tests::mqtt::MqttDevice;
use tests::{register_meter_devices, Engine, EngineOptions};

const SECRET: &str = "close-secret-01";
const WAIT: Duration = Duration::from_secs(20);

fn engine_with_info_logs() -> Engine {
    let engine =
        Engine::start(EngineOptions { shards: 2, log_filter: Some("info".into()), ..Default::default() });
    let nodes = ["quitter", "hangup", "twice", "deleted", "deaf", "rude"];
    register_meter_devices(&engine.client_a(), &nodes, SECRET);
    engine
}

/// The one line that says how `device_id`'s session ended, which must contain `reason`.
fn assert_ended_once(engine: &Engine, device_id: &str, reason: &str) {
    let needles = ["device session ended", device_id, reason];
    let lines = engine.wait_for_log(&needles, WAIT);
    assert_eq!(lines.len(), 1, "{device_id}: expected one line saying '{reason}', got {lines:#?}");
    assert!(lines[0].contains("INFO"), "said at info: {}", lines[0]);
    // A second line would follow the first at once, from the same closing session.
    std::thread::sleep(Duration::from_millis(300));
    let all_ends = engine.log_lines_with(&["device session ended", device_id]);
    assert_eq!(all_ends.len(), 1, "{device_id}: the end is said once: {all_ends:#?}");
}

#[test]
fn each_session_end_says_why_once() {
    let engine = engine_with_info_logs();

    let mut quitter = MqttDevice::login(engine.mqtt, "meter_quitter", SECRET);
    quitter.send(|out| v4::Disconnect.write(out).map(drop).unwrap());
    assert_ended_once(&engine, "meter_quitter", "disconnected by the device");

    drop(MqttDevice::login(engine.mqtt, "meter_hangup", SECRET));
    assert_ended_once(&engine, "meter_hangup", "hung up by the device");

    let first = MqttDevice::login(engine.mqtt, "meter_twice", SECRET);
    let second = MqttDevice::login(engine.mqtt, "meter_twice", SECRET);
    assert_ended_once(&engine, "meter_twice", "taken over by a newer login");
    drop((first, second));

    let deleted = MqttDevice::login(engine.mqtt, "meter_deleted", SECRET);
    assert_eq!(engine.client_a().delete("devices/meter_deleted").status, 204);
    assert_ended_once(&engine, "meter_deleted", "the device was deleted");
    drop(deleted);

    let mut rude = MqttDevice::login(engine.mqtt, "meter_rude", SECRET);
    let mut publish = v4::Publish::new(
        "$oc/devices/meter_rude/sys/messages/up",
        mqttbytes::QoS::ExactlyOnce,
        b"{}".to_vec(),
    );
    publish.pkid = 1;
    rude.send(|out| publish.write(out).map(drop).unwrap());
    assert_ended_once(&engine, "meter_rude", "protocol error: QoS 2 is not supported");
    drop(rude);
}

#[test]
fn a_device_that_does_not_read_is_said_to_have_stalled() {
    let engine = engine_with_info_logs();
    // Logs in, then never reads again: large messages fill the socket buffers, then the
    // session's queue.
    let deaf = MqttDevice::login(engine.mqtt, "meter_deaf", SECRET);
    let body = serde_json::json!({"message": "x".repeat(200 * 1024), "ttl": 5});
    let client = engine.client_a();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..40 {
                    if !engine.log_lines_with(&["device session ended", "meter_deaf"]).is_empty() {
                        return;
                    }
                    let response = client.post("devices/meter_deaf/messages", &body);
                    assert!(response.status == 201, "{}", response.text());
                }
            });
        }
    });
    assert_ended_once(&engine, "meter_deaf", "stalled: the device does not read");
    drop(deaf);
}

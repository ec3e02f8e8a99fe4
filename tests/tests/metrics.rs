//! `GET /metrics`: Prometheus text, served without credentials. Every device call (command,
//! property set, property get) is counted by outcome, successful ones also timed (a summary
//! with quantiles), and answers that match no waiting call are counted on their own.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mqttbytes::QoS;
use serde_json::{json, Value};
use tests::mqtt::{request_id_of, MqttDevice};
use tests::{http_request, Client, Engine, EngineOptions, HttpResponse};

const SECRET: &str = "device-secret-1";
const KINDS: [&str; 3] = ["command", "properties_set", "properties_get"];
const OUTCOMES: [&str; 6] = ["ok", "timeout", "offline", "invalid", "unknown", "busy"];
const QUANTILES: [&str; 4] = ["0.5", "0.9", "0.99", "0.999"];
const UNMATCHED: &str = "ringiot_device_responses_unmatched_total";

fn water_meter() -> Value {
    json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{
            "service_id": "water",
            "service_type": "Water",
            "properties": [{"property_name": "level", "data_type": "int", "max": "100", "method": "RW"}],
            "commands": [{
                "command_name": "SET_LEVEL",
                "paras": [{"para_name": "value", "data_type": "int", "max": "100", "required": true}]
            }]
        }]
    })
}

fn engine_with_devices(node_ids: &[&str], options: EngineOptions) -> Engine {
    let engine = Engine::start(EngineOptions { shards: 2, ..options });
    let client = engine.client_a();
    assert_eq!(client.post("products", &water_meter()).status, 201);
    for node_id in node_ids {
        let body = json!({"node_id": node_id, "product_id": "meter", "auth_info": {"secret": SECRET}});
        assert_eq!(client.post("devices", &body).status, 201);
    }
    engine
}

fn calls(kind: &str, outcome: &str) -> String {
    format!("ringiot_device_calls_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}")
}

fn round_trip(suffix: &str, kind: &str) -> String {
    format!("ringiot_device_call_round_trip_seconds{suffix}{{kind=\"{kind}\"}}")
}

fn quantile(kind: &str, quantile: &str) -> String {
    format!("ringiot_device_call_round_trip_seconds{{kind=\"{kind}\",quantile=\"{quantile}\"}}")
}

/// `GET /metrics` with no credentials at all.
fn scrape(engine: &Engine) -> String {
    let headers = [("Host".to_owned(), engine.http.to_string())];
    let response = http_request(engine.http, "GET", "/metrics", &headers, b"");
    assert_eq!(response.status, 200, "{}", response.text());
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "Prometheus text, got {content_type:?}");
    response.text()
}

/// The value of one series, e.g. `name{label="x"}`, in Prometheus text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name.trim() == series).then(|| value.parse().unwrap_or_else(|_| panic!("not a number: {line}")))
    })
}

/// Scrapes until every series has its expected value (counters move a moment after the event
/// the test sees), then returns the text; panics naming the first mismatch at the deadline.
fn await_metrics(engine: &Engine, expected: &[(String, f64)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(engine);
        let mismatch = expected.iter().find(|(series, value)| metric(&text, series) != Some(*value));
        match mismatch {
            None => return text,
            Some((series, value)) if Instant::now() > deadline => {
                panic!("{series} is {:?}, expected {value}:\n{text}", metric(&text, series))
            }
            Some(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Every outcome of every kind: the given counts, zero for the rest.
fn expected_calls(counts: &[(&str, &str, f64)]) -> Vec<(String, f64)> {
    let mut expected = Vec::new();
    for kind in KINDS {
        for outcome in OUTCOMES {
            let count = counts.iter().find(|(k, o, _)| *k == kind && *o == outcome).map_or(0.0, |c| c.2);
            expected.push((calls(kind, outcome), count));
        }
    }
    expected
}

fn in_background(
    client: &Client,
    request: impl FnOnce(&Client) -> HttpResponse + Send + 'static,
) -> JoinHandle<HttpResponse> {
    let client = client.clone();
    thread::spawn(move || request(&client))
}

/// Waits for the next downlink request and answers it with `{}` on its response topic.
fn answer_next(device: &mut MqttDevice, device_id: &str) {
    let publish = device.next_publish(Duration::from_secs(10)).expect("the device got its request");
    let request_id = request_id_of(&publish.topic);
    let (family, _) = publish.topic.rsplit_once("/request_id=").unwrap();
    let family = family.strip_prefix(&format!("$oc/devices/{device_id}/sys/")).unwrap().to_owned();
    let topic = format!("$oc/devices/{device_id}/sys/{family}/response/request_id={request_id}");
    device.publish(&topic, b"{}", QoS::AtMostOnce, 0);
}

fn command(value: i64) -> Value {
    json!({"service_id": "water", "command_name": "SET_LEVEL", "paras": {"value": value}})
}

#[test]
fn metrics_are_served_without_credentials_and_start_at_zero() {
    let engine = engine_with_devices(&[], EngineOptions::default());
    let mut expected = expected_calls(&[]);
    for kind in KINDS {
        expected.push((round_trip("_count", kind), 0.0));
        expected.push((round_trip("_sum", kind), 0.0));
    }
    expected.push((UNMATCHED.to_owned(), 0.0));
    let text = scrape(&engine);
    for (series, value) in expected {
        assert_eq!(metric(&text, &series), Some(value), "{series} on a fresh engine:\n{text}");
    }
}

#[test]
fn command_outcomes_are_counted_and_successes_timed() {
    let options = EngineOptions {
        args: vec!["--command-timeout-ms".into(), "2000".into()],
        config_extra: "device_calls_in_flight_max = 1\n".into(),
        ..Default::default()
    };
    let engine = engine_with_devices(&["n1", "n2", "n3"], options);
    let client = engine.client_a();
    let mut answering = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let mut silent = MqttDevice::login(engine.mqtt, "meter_n3", SECRET);
    for value in 0..2 {
        let call =
            in_background(&client, move |client| client.post("devices/meter_n1/commands", &command(value)));
        answer_next(&mut answering, "meter_n1");
        assert_eq!(call.join().unwrap().status, 200);
    }
    assert_eq!(client.post("devices/meter_n2/commands", &command(1)).status, 403);
    assert_eq!(client.post("devices/meter_n1/commands", &command(500)).status, 400);
    assert_eq!(client.post("devices/meter_nobody/commands", &command(1)).status, 404);
    let waiting = in_background(&client, |client| client.post("devices/meter_n3/commands", &command(1)));
    silent.next_publish(Duration::from_secs(10)).expect("the silent device got its command");
    assert_eq!(client.post("devices/meter_n3/commands", &command(2)).status, 429);
    assert_eq!(waiting.join().unwrap().json()["error_code"], "IOTDA.014111");
    answering.publish(
        "$oc/devices/meter_n1/sys/commands/response/request_id=nope",
        b"{}",
        QoS::AtMostOnce,
        0,
    );

    let mut expected = expected_calls(&[
        ("command", "ok", 2.0),
        ("command", "timeout", 1.0),
        ("command", "offline", 1.0),
        ("command", "invalid", 1.0),
        ("command", "unknown", 1.0),
        ("command", "busy", 1.0),
    ]);
    expected.push((UNMATCHED.to_owned(), 1.0));
    expected.push((round_trip("_count", "command"), 2.0));
    let text = await_metrics(&engine, &expected);
    for q in QUANTILES {
        let value =
            metric(&text, &quantile("command", q)).unwrap_or_else(|| panic!("no quantile {q}:\n{text}"));
        assert!(value > 0.0, "quantile {q} of two round trips is {value}");
    }
    assert!(metric(&text, &round_trip("_sum", "command")).unwrap() > 0.0, "{text}");
}

#[test]
fn property_calls_are_counted_by_kind() {
    let engine = engine_with_devices(&["n1", "n2"], EngineOptions::default());
    let client = engine.client_a();
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let set = json!({"services": [{"service_id": "water", "properties": {"level": 1}}]});
    let body = set.clone();
    let call = in_background(&client, move |client| client.put("devices/meter_n1/properties", &body));
    answer_next(&mut device, "meter_n1");
    assert_eq!(call.join().unwrap().status, 200);
    let call = in_background(&client, |client| client.get("devices/meter_n1/properties?service_id=water"));
    answer_next(&mut device, "meter_n1");
    assert_eq!(call.join().unwrap().status, 200);
    let too_high = json!({"services": [{"service_id": "water", "properties": {"level": 101}}]});
    assert_eq!(client.put("devices/meter_n1/properties", &too_high).status, 400);
    assert_eq!(client.put("devices/meter_n2/properties", &set).status, 403);
    assert_eq!(client.get("devices/meter_nobody/properties?service_id=water").status, 404);

    let mut expected = expected_calls(&[
        ("properties_set", "ok", 1.0),
        ("properties_set", "invalid", 1.0),
        ("properties_set", "offline", 1.0),
        ("properties_get", "ok", 1.0),
        ("properties_get", "unknown", 1.0),
    ]);
    expected.push((round_trip("_count", "properties_set"), 1.0));
    expected.push((round_trip("_count", "properties_get"), 1.0));
    expected.push((round_trip("_count", "command"), 0.0));
    expected.push((UNMATCHED.to_owned(), 0.0));
    await_metrics(&engine, &expected);
}

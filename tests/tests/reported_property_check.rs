//! A device's property report is checked against its product model: a value that does not
//! conform (unknown service or property, wrong type, out of range, too deep, …) is dropped and
//! counted in `ringiot_reported_properties_dropped_total{reason}`, the valid rest of the report
//! is applied, the QoS 1 PUBACK comes all the same and the device stays connected.

use std::collections::BTreeSet;

use mqttbytes::QoS;
use serde_json::{json, Value};
use tests::mqtt::MqttDevice;
use tests::{http_request, Engine, EngineOptions};

const SECRET: &str = "device-secret-1";
const TOPIC: &str = "$oc/devices/meter_n1/sys/properties/report";
const REASONS: [&str; 8] = [
    "unknown_service",
    "unknown_property",
    "wrong_type",
    "out_of_range",
    "not_in_enum",
    "too_long",
    "too_deep",
    "too_large",
];

/// Service `water`: `level` int 0–100, `state` enum ON/OFF, `config` jsonObject.
fn water_meter() -> Value {
    json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{
            "service_id": "water", "service_type": "Water",
            "properties": [
                {"property_name": "level", "data_type": "int", "min": "0", "max": "100", "method": "RE"},
                {"property_name": "state", "data_type": "enum", "enum_list": ["ON", "OFF"], "method": "RE"},
                {"property_name": "config", "data_type": "jsonObject", "method": "RE"}
            ]
        }]
    })
}

/// `{"a":{"a":…1…}}`, `depth` objects deep (built by hand: serde_json parses only 128 levels).
fn nested_json(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "a": inner }))
}

/// A QoS 1 report of `properties` of service `water`; asserts the PUBACK.
fn report(device: &mut MqttDevice, properties: Value, packet_id: u16) {
    let payload = json!({"services": [{"service_id": "water", "properties": properties}]});
    device.publish(TOPIC, payload.to_string().as_bytes(), QoS::AtLeastOnce, packet_id);
}

/// `ringiot_reported_properties_dropped_total` per reason, from `GET /metrics`.
fn dropped_counts(engine: &Engine) -> Vec<(&'static str, f64)> {
    let headers = [("Host".to_owned(), engine.http.to_string())];
    let text = http_request(engine.http, "GET", "/metrics", &headers, b"").text();
    REASONS
        .iter()
        .map(|reason| {
            let series = format!("ringiot_reported_properties_dropped_total{{reason=\"{reason}\"}} ");
            let line = text.lines().find(|line| line.starts_with(&series));
            let value = line.unwrap_or_else(|| panic!("no {series}in:\n{text}"));
            (*reason, value[series.len()..].parse().unwrap())
        })
        .collect()
}

fn reported(engine: &Engine) -> Value {
    let shadow = engine.client_a().get("devices/meter_n1/shadow").json();
    assert_eq!(shadow["shadow"][0]["service_id"], "water", "{shadow}");
    shadow["shadow"][0].clone()
}

/// Regression: a device could store a 1,000-deep JSON value (or 101) under an `int 0..100`
/// property; the shadow kept it across restarts and served it.
#[test]
fn deep_json_and_out_of_range_values_under_an_int_property_are_dropped_not_stored() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions { shards: 2, ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    tests::register_devices(&engine.client_a(), &water_meter(), &["n1"], SECRET);
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);

    report(&mut device, json!({"level": 42}), 1);
    report(&mut device, json!({"level": nested_json(1000), "state": "ON"}), 2);
    report(&mut device, json!({"level": 101, "state": "OFF", "config": nested_json(1000)}), 3);
    report(&mut device, json!({"level": null, "valve": 1}), 4);
    assert!(device.ping(), "bad values never end the session");
    assert_eq!(engine.client_a().get("devices/meter_n1").json()["status"], "ONLINE");

    let water = reported(&engine);
    assert_eq!(water["reported"]["properties"], json!({"level": 42, "state": "OFF"}), "{water}");
    assert_eq!(water["version"], 3, "the report with nothing valid changed nothing: {water}");
    let mut expected: Vec<(&str, f64)> = REASONS.iter().map(|reason| (*reason, 0.0)).collect();
    for (reason, count) in
        [("wrong_type", 2.0), ("out_of_range", 1.0), ("too_deep", 1.0), ("unknown_property", 1.0)]
    {
        expected.iter_mut().find(|(label, _)| *label == reason).unwrap().1 = count;
    }
    assert_eq!(dropped_counts(&engine), expected, "counted per reason, once per value");

    engine.stop();
    let engine = Engine::start_on(&data_dir, &options).unwrap();
    let after = reported(&engine);
    assert_eq!(after, water, "the stored shadow holds only the valid values");
    let names: BTreeSet<&str> =
        after["reported"]["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["level", "state"]));
}

#[test]
fn a_product_without_services_stores_no_reported_values() {
    let engine = Engine::start(EngineOptions::default());
    tests::register_meter_devices(&engine.client_a(), &["n1"], SECRET);
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    report(&mut device, json!({"level": 42, "state": "ON"}), 1);
    assert!(device.ping());
    let shadow = engine.client_a().get("devices/meter_n1/shadow").json();
    assert_eq!(shadow["shadow"], json!([]), "{shadow}");
    let unknown_service =
        dropped_counts(&engine).into_iter().find(|(reason, _)| *reason == "unknown_service");
    assert_eq!(unknown_service, Some(("unknown_service", 2.0)));

    // QoS 0 goes the same way; the PINGRESP comes next (no PUBACK for QoS 0).
    let payload = json!({"services": [{"service_id": "gas", "properties": {"ppm": 1}}]}).to_string();
    device.publish(TOPIC, payload.as_bytes(), QoS::AtMostOnce, 0);
    assert!(device.ping());
    let unknown_service =
        dropped_counts(&engine).into_iter().find(|(reason, _)| *reason == "unknown_service");
    assert_eq!(unknown_service, Some(("unknown_service", 3.0)));
}

//! Durability: products and devices survive a clean restart and a kill -9 right after a burst of
//! 201s; a torn last log record is cut off at start; a corrupt record in the middle of a log
//! refuses the start with a clear message; a different shard count is refused.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use protocol::routing::home_shard;
use serde_json::json;
use tests::{Engine, EngineOptions};

fn product_body(product_id: &str) -> serde_json::Value {
    json!({
        "product_id": product_id,
        "name": "water meter",
        "device_type": "WaterMeter",
        "protocol_type": "MQTT",
        "data_format": "json",
        "service_capabilities": [{
            "service_id": "water",
            "service_type": "water",
            "properties": [{"property_name": "level", "data_type": "int", "min": "0", "max": "100", "method": "RE"}],
            "commands": [{"command_name": "ON_OFF", "paras": [{"para_name": "value", "data_type": "string", "enum_list": ["ON", "OFF"]}]}]
        }]
    })
}

fn add_device(engine: &Engine, node_id: &str) -> tests::HttpResponse {
    engine.client_a().post(
        "devices",
        &json!({"node_id": node_id, "product_id": "meter", "auth_info": {"secret": "secret-of-the-device"}}),
    )
}

/// Runs an engine on `data_dir` that registers a product and three devices, then stops it.
fn stopped_engine_with_three_devices(data_dir: &Path, options: &EngineOptions) {
    let mut engine = Engine::start_on(data_dir, options).unwrap();
    assert_eq!(engine.client_a().post("products", &product_body("meter")).status, 201);
    for n in 0..3 {
        assert_eq!(add_device(&engine, &format!("node{n}")).status, 201);
    }
    assert!(engine.stop().success());
}

fn flip_byte(path: &Path, offset: u64) {
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    let mut byte = [0u8; 1];
    std::io::Read::read_exact(&mut file, &mut byte).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
}

fn segments_of(data_dir: &Path, shard: usize) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(data_dir.join(format!("shard-{shard}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments
}

fn device_ids(engine: &Engine) -> Vec<String> {
    let mut ids = Vec::new();
    let mut marker = String::new();
    loop {
        let page = engine.client_a().get(&format!("devices?limit=50{marker}"));
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json();
        let devices = page["devices"].as_array().unwrap();
        if devices.is_empty() {
            return ids;
        }
        ids.extend(devices.iter().map(|d| d["device_id"].as_str().unwrap().to_owned()));
        marker = format!("&marker={}", page["page"]["marker"].as_str().unwrap());
    }
}

#[test]
fn a_clean_restart_keeps_products_and_devices() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions { shards: 2, ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    assert_eq!(engine.client_a().post("products", &product_body("meter")).status, 201);
    for n in 0..20 {
        assert_eq!(add_device(&engine, &format!("node{n}")).status, 201);
    }
    let renamed = engine.client_a().put("devices/meter_node3", &json!({"device_name": "renamed"}));
    assert_eq!(renamed.status, 200);
    assert_eq!(engine.client_a().delete("devices/meter_node4").status, 204);
    let before = device_ids(&engine);
    assert!(engine.stop().success(), "SIGTERM ends the engine with exit code 0");

    let engine = Engine::start_on(&data_dir, &options).unwrap();
    assert_eq!(device_ids(&engine), before);
    assert_eq!(before.len(), 19);
    let product = engine.client_a().get("products/meter");
    assert_eq!(product.json()["service_capabilities"][0]["service_id"], "water");
    let device = engine.client_a().get("devices/meter_node3").json();
    assert_eq!(device["device_name"], "renamed");
    assert_eq!(device["auth_info"]["secret"], "secret-of-the-device");
    assert_eq!(engine.client_a().get("devices/meter_node4").status, 404);
    // Ids handed out after the restart sort above every stored one: the newest device is first.
    assert_eq!(add_device(&engine, "after_restart").status, 201);
    assert_eq!(device_ids(&engine)[0], "meter_after_restart");
}

#[test]
fn kill_9_right_after_a_burst_of_201s_loses_none_of_them() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions { shards: 2, ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    assert_eq!(engine.client_a().post("products", &product_body("meter")).status, 201);
    let address = engine.http;
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            std::thread::spawn(move || {
                let client = tests::Client::new(
                    address,
                    tests::PROJECT_A.project_id,
                    tests::Auth::Token(tests::PROJECT_A.token.into()),
                );
                (0..25)
                    .filter_map(|n| {
                        let node_id = format!("w{worker}n{n}");
                        let body = json!({"node_id": node_id, "product_id": "meter"});
                        (client.post("devices", &body).status == 201).then(|| format!("meter_{node_id}"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acknowledged: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert_eq!(acknowledged.len(), 200, "every registration was acknowledged");
    engine.kill9();

    let engine = Engine::start_on(&data_dir, &options).unwrap();
    let mut recovered = device_ids(&engine);
    acknowledged.sort();
    recovered.sort();
    assert_eq!(recovered, acknowledged);
}

#[test]
fn a_torn_last_record_is_cut_off_and_the_engine_starts() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions::default();
    stopped_engine_with_three_devices(&data_dir, &options);
    // A crash in the middle of a write: half a record header at the end of the last segment.
    let segment = segments_of(&data_dir, 0).pop().unwrap();
    let mut file = std::fs::OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0x40, 0, 0, 0, 0xde, 0xad]).unwrap();
    drop(file);

    let engine = Engine::start_on(&data_dir, &options).unwrap();
    assert_eq!(device_ids(&engine).len(), 3);
    assert_eq!(add_device(&engine, "node3").status, 201, "the log takes new records after the cut");
    let mut engine = engine;
    assert!(engine.stop().success());
    let engine = Engine::start_on(&data_dir, &options).unwrap();
    assert_eq!(device_ids(&engine).len(), 4);
}

#[test]
fn a_corrupt_record_in_the_middle_refuses_to_start_with_a_clear_message() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions::default();
    stopped_engine_with_three_devices(&data_dir, &options);
    // Flip one byte inside the body of the first record (after its 16-byte header).
    flip_byte(&segments_of(&data_dir, 0)[0], 20);

    let stderr = match Engine::start_on(&data_dir, &options) {
        Ok(_) => panic!("the engine started on a corrupt log"),
        Err(stderr) => stderr,
    };
    assert!(stderr.contains("checksum") || stderr.contains("corrupt"), "message names the problem: {stderr}");
    assert!(stderr.contains("shard-0"), "message names the file: {stderr}");
}

/// Regression: shard 0 used to wait forever for a reply from a shard that had failed to start,
/// and the process ignored SIGTERM.
#[test]
fn a_shard_that_cannot_start_stops_the_whole_engine() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions { shards: 2, ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    assert_eq!(engine.client_a().post("products", &product_body("meter")).status, 201);
    let on_shard_1: Vec<String> = (0..40)
        .map(|n| format!("node{n}"))
        .filter(|n| home_shard(&format!("meter_{n}"), 2) == 1)
        .take(3)
        .collect();
    for node in &on_shard_1 {
        assert_eq!(add_device(&engine, node).status, 201);
    }
    assert!(engine.stop().success());
    flip_byte(&segments_of(&data_dir, 1)[0], 20);

    let stderr = match Engine::start_on(&data_dir, &options) {
        Ok(_) => panic!("the engine started with a corrupt shard"),
        Err(stderr) => stderr,
    };
    assert!(!stderr.starts_with(tests::HUNG), "the engine hung instead of exiting: {stderr}");
    assert!(stderr.contains("shard-1"), "{stderr}");
}

#[test]
fn another_shard_count_is_refused_instead_of_misrouting() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut engine = Engine::start_on(&data_dir, &EngineOptions { shards: 2, ..Default::default() }).unwrap();
    assert!(engine.stop().success());
    let stderr = match Engine::start_on(&data_dir, &EngineOptions { shards: 1, ..Default::default() }) {
        Ok(_) => panic!("started with a different shard count"),
        Err(stderr) => stderr,
    };
    assert!(stderr.contains("--shards 2"), "{stderr}");
}

#[test]
fn compaction_keeps_every_device_across_restarts() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    // A tiny compaction bound: the log is snapshotted many times during the run.
    let options =
        EngineOptions { shards: 2, config_extra: "log_compaction_bytes = 4096".into(), ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    assert_eq!(engine.client_a().post("products", &product_body("meter")).status, 201);
    for n in 0..120 {
        assert_eq!(add_device(&engine, &format!("node{n}")).status, 201);
    }
    for n in (0..120).step_by(3) {
        assert_eq!(engine.client_a().delete(&format!("devices/meter_node{n}")).status, 204);
    }
    let before = device_ids(&engine);
    assert_eq!(before.len(), 80);
    let snapshots = std::fs::read_dir(data_dir.join("shard-0"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "snap"))
        .count();
    assert!(snapshots >= 1, "the log was compacted");
    engine.kill9();
    let engine = Engine::start_on(&data_dir, &options).unwrap();
    assert_eq!(device_ids(&engine), before);
    assert_eq!(engine.client_a().get("products/meter").status, 200, "products survive shard 0's snapshots");
}

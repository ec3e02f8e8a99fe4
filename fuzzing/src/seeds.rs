//! Hand-made valid inputs per target: the start of each checked-in corpus.
//!
//! `tests/corpus_replay.rs` runs them on every `cargo test`, and its ignored test
//! `write_seed_corpus` writes them to `fuzz/corpus/<target>/seed-*` (the campaign adds what it
//! finds interesting next to them).

use protocol::auth::RequestParts;
use protocol::mqtt::login::device_password;
use shards::log::{self, LogRecord};
use shards::registry::records::{
    BatchResult, BatchResultsRecord, BatchTaskKey, BatchTaskRecord, DeviceKey, DeviceRecord, DeviceStatus,
    MessageKey, MessageRecord, MessageStatus, ProductKey, ProductRecord, RegistryRecord, RoutingKey,
    RoutingRecord, ShadowRecord,
};

/// One seed: its target, a file name, its bytes.
pub type Seed = (&'static str, String, Vec<u8>);

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push((target, format!("seed-{name}"), bytes))
    };
    for (name, bytes) in mqtt() {
        add("mqtt_session", &name, bytes);
    }
    for (name, bytes) in rest() {
        add("rest_bodies", &name, bytes);
    }
    for (name, bytes) in aksk() {
        add("aksk_auth", &name, bytes);
    }
    for (name, bytes) in login() {
        add("device_login", &name, bytes);
    }
    for (name, bytes) in log_files() {
        add("log_replay", &name, bytes);
    }
    seeds
}

const TIMESTAMP: &str = "2024010100";
const DEVICE_ID: &str = "fuzz_device";

fn client_id() -> String {
    format!("{DEVICE_ID}_0_0_{TIMESTAMP}")
}

// ---- MQTT -----------------------------------------------------------------------------------

fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    let mut length = body.len();
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if length == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn string(text: &[u8]) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text);
    out
}

/// Packets a device sends, for `v5` or 3.1.1.
struct Device {
    v5: bool,
}

impl Device {
    fn properties(&self) -> &'static [u8] {
        if self.v5 {
            &[0]
        } else {
            &[]
        }
    }

    fn connect(&self, client_id: &str, username: &str, password: &str) -> Vec<u8> {
        let mut body = string(b"MQTT");
        body.extend_from_slice(&[if self.v5 { 5 } else { 4 }, 0xC2, 0, 60]);
        body.extend_from_slice(self.properties());
        for field in [client_id, username, password] {
            body.extend(string(field.as_bytes()));
        }
        frame(0x10, &body)
    }

    fn publish(&self, topic: &str, packet_id: u16, payload: &[u8]) -> Vec<u8> {
        let mut body = string(topic.as_bytes());
        if packet_id != 0 {
            body.extend_from_slice(&packet_id.to_be_bytes());
        }
        body.extend_from_slice(self.properties());
        body.extend_from_slice(payload);
        frame(if packet_id != 0 { 0x32 } else { 0x30 }, &body)
    }

    fn subscribe(&self, filters: &[&str]) -> Vec<u8> {
        let mut body = 7u16.to_be_bytes().to_vec();
        body.extend_from_slice(self.properties());
        for filter in filters {
            body.extend(string(filter.as_bytes()));
            body.push(1);
        }
        frame(0x82, &body)
    }

    fn unsubscribe(&self, filter: &str) -> Vec<u8> {
        let mut body = 8u16.to_be_bytes().to_vec();
        body.extend_from_slice(self.properties());
        body.extend(string(filter.as_bytes()));
        frame(0xA2, &body)
    }

    /// A session's worth of packets after the CONNECT.
    fn session(&self) -> Vec<u8> {
        let prefix = format!("$oc/devices/{DEVICE_ID}");
        let report = br#"{"services":[{"service_id":"s","properties":{"int":5,"str":"x"},"event_time":"20240101T000000Z"}]}"#;
        [
            self.subscribe(&[
                &format!("{prefix}/sys/commands/#"),
                &format!("{prefix}/user/a"),
                "$oc/devices/+/sys/#",
            ]),
            self.publish(&format!("{prefix}/sys/properties/report"), 1, report),
            self.publish(&format!("{prefix}/sys/shadow/get/request_id=42"), 2, br#"{"service_id":"s"}"#),
            self.publish(&format!("{prefix}/sys/commands/response/request_id=9"), 0, br#"{"result_code":0}"#),
            self.publish(&format!("{prefix}/sys/messages/up"), 3, b"hello"),
            self.publish(&format!("{prefix}/user/a"), 0, &[0xff, 0]),
            self.publish("$oc/devices/other/sys/messages/up", 4, b"{}"),
            frame(0x40, &[0, 1]),
            self.unsubscribe(&format!("{prefix}/user/a")),
            vec![0xC0, 0],
            vec![0xE0, 0],
        ]
        .concat()
    }
}

fn mqtt() -> Vec<(String, Vec<u8>)> {
    let password = device_password(crate::SECRET, TIMESTAMP);
    let mut seeds = Vec::new();
    for (mode, v5) in [(1u8, false), (2, true)] {
        let device = Device { v5 };
        let version = if v5 { "v5" } else { "v4" };
        let login = [vec![0], device.connect(&client_id(), DEVICE_ID, &password), device.session()].concat();
        seeds.push((format!("login-{version}"), login));
        seeds.push((format!("session-{version}"), [vec![mode], device.session()].concat()));
    }
    let mqisdp = {
        let mut body = string(b"MQIsdp");
        body.extend_from_slice(&[3, 0x02, 0, 60]);
        body.extend(string(client_id().as_bytes()));
        [vec![0], frame(0x10, &body)].concat()
    };
    seeds.push(("login-mqtt31".into(), mqisdp));
    seeds
}

// ---- REST -----------------------------------------------------------------------------------

fn rest() -> Vec<(String, Vec<u8>)> {
    let bodies: [(u8, &str, &str); 16] = [
        (0, "product-create", crate::rest::PRODUCT_JSON),
        (
            1,
            "product-update",
            r#"{"name":"renamed","description":"d","service_capabilities":[{"service_id":"t","service_type":"t","properties":[{"property_name":"p","data_type":"decimal","min":"0","max":"1.5","method":"R"}]}]}"#,
        ),
        (
            2,
            "device-add",
            r#"{"node_id":"node-1","product_id":"fuzzprod","device_name":"dev","auth_info":{"auth_type":"SECRET","secret":"abcdefgh12","secure_access":false,"timeout":0},"description":"d","extension_info":{"a":1},"shadow":[{"service_id":"s","desired":{"int":3}}]}"#,
        ),
        (
            2,
            "device-add-cert",
            r#"{"device_id":"d-2","node_id":"n2","product_id":"fuzzprod","auth_info":{"auth_type":"CERTIFICATES","fingerprint":"0123456789abcdef0123456789abcdef01234567"}}"#,
        ),
        (
            3,
            "device-update",
            r#"{"device_name":"new","description":"x","extension_info":{"k":"v"},"auth_info":{"secure_access":true,"timeout":300}}"#,
        ),
        (
            4,
            "command",
            r#"{"service_id":"s","command_name":"SET","paras":{"int":3,"dec":0.5,"str":"ab","enum":"ON","bool":true}}"#,
        ),
        (4, "command-free", r#"{"paras":{"anything":[1,2,{"x":null}]}}"#),
        (
            5,
            "properties-set",
            r#"{"services":[{"service_id":"s","properties":{"int":7,"dec":1.25,"str":"abc","enum":"A","bool":false,"time":"20240101T000000Z","obj":{"a":1},"list":["x","y"]}}]}"#,
        ),
        (
            6,
            "message",
            r#"{"message_id":"m-1","name":"n","message":{"hello":"world"},"encoding":"none","payload_format":"standard","topic":"a/b","ttl":60,"properties":{"correlation_data":"c1","response_topic":"r/t","user_properties":[{"prop_key":"k","prop_value":"v"}]}}"#,
        ),
        (
            6,
            "message-base64",
            r#"{"message":"aGVsbG8=","encoding":"base64","payload_format":"raw","topic_full_name":"custom/topic"}"#,
        ),
        (
            7,
            "batch-commands",
            r#"{"task_name":"t1","task_type":"createCommands","targets":["d1","d2"],"document":{"service_id":"s","command_name":"SET","paras":{"int":1}}}"#,
        ),
        (
            7,
            "batch-messages",
            r#"{"task_name":"t 2","task_type":"createMessages","targets":["d1"],"document":{"message":"hi"}}"#,
        ),
        (
            8,
            "rule-create",
            r#"{"rule_name":"r1","description":"d","subject":{"resource":"device.property","event":"report"},"app_type":"GLOBAL","select":"*","where":""}"#,
        ),
        (9, "rule-update", r#"{"rule_name":"r2","active":true,"description":"new"}"#),
        (
            10,
            "action-create",
            r#"{"rule_id":"rule","channel":"HTTP_FORWARDING","channel_detail":{"http_forwarding":{"url":"http://example.com:8443/push?x=1","token":"tok"}}}"#,
        ),
        (11, "action-update", r#"{"channel_detail":{"http_forwarding":{"url":"http://[::1]:9000/p"}}}"#),
    ];
    let mut seeds: Vec<(String, Vec<u8>)> = bodies
        .iter()
        .map(|(selector, name, body)| (name.to_string(), [&[*selector], body.as_bytes()].concat()))
        .collect();
    seeds.push((
        "query".into(),
        [&[12u8][..], b"limit=20&offset=5&marker=ffffffffffffffffffffffff&name=a%20b+c"].concat(),
    ));
    seeds
}

// ---- AK/SK ----------------------------------------------------------------------------------

fn aksk() -> Vec<(String, Vec<u8>)> {
    let body = br#"{"service_id":"s","command_name":"SET","paras":{"int":1}}"#;
    let headers: [(&str, &[u8]); 4] = [
        ("Host", b"127.0.0.1:8080"),
        ("X-Sdk-Date", b"20240101T000000Z"),
        ("Content-Type", b"application/json"),
        ("User-Agent", b"huaweicloud-usdk-python/3.0 (uuid 1234)"),
    ];
    let mut seeds = Vec::new();
    for (name, v11, path, query) in [
        ("sdk-post", false, "/v5/iot/p1/devices/d%201/commands", None),
        ("v11-get", true, "/v5/iot/p1/devices", Some("limit=10&marker=ab&app_id=x%2By")),
    ] {
        let parts = RequestParts { method: "POST", path, query, headers: &headers, body };
        let Ok(authorization) = crate::aksk::sign(&parts, v11) else { continue };
        let mut text = format!(
            "{authorization}\nPOST\n{path}\n{}\n",
            query.map(|q| format!("?{q}")).unwrap_or_default()
        )
        .into_bytes();
        for (header, value) in headers {
            text.extend_from_slice(header.as_bytes());
            text.extend_from_slice(b": ");
            text.extend_from_slice(value);
            text.push(b'\n');
        }
        text.push(b'\n');
        text.extend_from_slice(body);
        seeds.push((name.to_string(), text));
    }
    seeds
}

// ---- Device login ---------------------------------------------------------------------------

fn login() -> Vec<(String, Vec<u8>)> {
    let password = device_password(crate::SECRET, TIMESTAMP);
    let checked = format!("{DEVICE_ID}_0_1_{TIMESTAMP}");
    [
        ("unchecked", 0b0_1111u8, client_id()),
        ("checked", 0b0_1111, checked),
        ("checked-late", 0b1_1111, format!("{DEVICE_ID}_0_1_2024022923")),
        ("no-password", 0b0_1101, client_id()),
    ]
    .into_iter()
    .map(|(name, flags, client_id)| {
        let text = format!("{client_id}\n{DEVICE_ID}\n{password}");
        (name.to_string(), [&[flags, 0, 60][..], text.as_bytes()].concat())
    })
    .collect()
}

// ---- Shard log ------------------------------------------------------------------------------

fn registry_records() -> Vec<LogRecord> {
    let device = DeviceRecord {
        record_id: 0x0123_4567_89ab_cdef_0123_4567,
        project_id: "p".into(),
        device_id: DEVICE_ID.into(),
        node_id: "node".into(),
        product_id: "fuzzprod".into(),
        app_id: "app".into(),
        gateway_id: DEVICE_ID.into(),
        device_name: Some("pump".into()),
        description: None,
        auth_type: "SECRET".into(),
        secret: Some(crate::SECRET.into()),
        fingerprint: None,
        secondary_fingerprint: None,
        secondary_secret: None,
        secure_access: false,
        timeout_s: 0,
        extension_info_json: Some(r#"{"a":1}"#.into()),
        initial_shadow_json: Some(r#"[{"service_id":"s","desired":{"int":1}}]"#.into()),
        status: DeviceStatus::Online,
        create_time_ms: 1_704_067_200_000,
        connection_status_update_time_ms: Some(1),
        active_time_ms: None,
    };
    let message = MessageRecord {
        device_id: DEVICE_ID.into(),
        message_id: "m".into(),
        seq: 1,
        name: None,
        message_json: r#""hi""#.into(),
        encoding: "none".into(),
        payload_format: "standard".into(),
        topic: None,
        topic_full_name: None,
        properties_json: None,
        ttl_minutes: 5,
        status: MessageStatus::Pending,
        error_code: None,
        error_msg: None,
        created_ms: 1,
        finished_ms: None,
    };
    let records = [
        RegistryRecord::SnapshotMark,
        RegistryRecord::ProductPut(ProductRecord {
            record_id: 1,
            project_id: "p".into(),
            product_id: "fuzzprod".into(),
            product_json: crate::rest::stored_product_json(),
        }),
        RegistryRecord::DevicePut(Box::new(device)),
        RegistryRecord::ShadowPut(ShadowRecord {
            device_id: DEVICE_ID.into(),
            shadow_json: r#"{"services":[{"service_id":"s","desired":{"properties":{"int":1}},"reported":{"properties":{}},"version":1}]}"#.into(),
        }),
        RegistryRecord::MessagePut(Box::new(message)),
        RegistryRecord::RoutingPut(RoutingRecord {
            project_id: "p".into(),
            id: "rule".into(),
            is_action: false,
            json: r#"{"rule_id":"rule","rule_name":"r","description":null,"subject":{"resource":"device.message","event":"report"},"app_type":"GLOBAL","app_id":null,"select":null,"where":null,"active":true}"#.into(),
        }),
        RegistryRecord::BatchTaskPut(Box::new(BatchTaskRecord {
            project_id: "p".into(),
            task_id: "t".into(),
            task_name: "n".into(),
            task_type: "createMessages".into(),
            app_id: None,
            document_json: r#"{"message":"hi"}"#.into(),
            targets: vec![DEVICE_ID.into()],
            created_ms: 5,
            stop_requested: false,
        })),
        RegistryRecord::BatchResults(Box::new(BatchResultsRecord {
            project_id: "p".into(),
            task_id: "t".into(),
            results: vec![BatchResult { index: 0, status: 2, output: Some("{}".into()), error_code: None, error_msg: None }],
        })),
        RegistryRecord::MessageDelete(MessageKey { device_id: DEVICE_ID.into(), message_id: "m".into() }),
        RegistryRecord::RoutingDelete(RoutingKey { project_id: "p".into(), id: "rule".into() }),
        RegistryRecord::BatchTaskDelete(BatchTaskKey { project_id: "p".into(), task_id: "t".into() }),
        RegistryRecord::ProductDelete(ProductKey { project_id: "p".into(), product_id: "gone".into() }),
        RegistryRecord::DeviceDelete(DeviceKey { device_id: "gone".into() }),
    ];
    records.iter().enumerate().map(|(revision, record)| record.encode(revision as u64 + 1)).collect()
}

fn log_files() -> Vec<(String, Vec<u8>)> {
    let records = registry_records();
    let mut segment = Vec::new();
    let mut framed = vec![1u8];
    for record in &records {
        log::encode_into(&mut segment, record.kind, record.version, &record.body);
        framed.extend_from_slice(&record.kind.to_le_bytes());
        framed.extend_from_slice(&record.version.to_le_bytes());
        framed.extend_from_slice(&(record.body.len() as u16).to_le_bytes());
        framed.extend_from_slice(&record.body);
    }
    let mut snapshot = segment.clone();
    let footer = [(records.len() as u64).to_le_bytes(), 1u64.to_le_bytes()].concat();
    log::encode_into(&mut snapshot, 0xFFFF, 1, &footer);
    let mut seeds = vec![
        ("segment".to_string(), [&[0u8][..], &segment].concat()),
        ("snapshot".to_string(), [&[0u8][..], &snapshot].concat()),
        ("torn-tail".to_string(), [&[0u8][..], &segment[..segment.len() - 7]].concat()),
        ("framed".to_string(), framed),
    ];
    for record in &records {
        let single =
            [&[2u8][..], &record.kind.to_le_bytes(), &record.version.to_le_bytes(), &record.body].concat();
        seeds.push((format!("record-kind-{}", record.kind), single));
    }
    seeds
}

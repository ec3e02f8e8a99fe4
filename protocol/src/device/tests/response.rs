//! Response shapes: what is written, what is omitted, and that list entries carry no secret.

use simd_json::json;

use crate::device::{AuthType, DeviceAuthInfo, DeviceResponse, DeviceStatus, DeviceSummary, NodeType, Tag};
use crate::json::{from_bytes, to_vec};

fn shown_device() -> DeviceResponse {
    DeviceResponse {
        app_id: "default".to_owned(),
        app_name: "default".to_owned(),
        device_id: "smartwater_node1".to_owned(),
        node_id: "node1".to_owned(),
        gateway_id: "smartwater_node1".to_owned(),
        device_name: "node1".to_owned(),
        node_type: NodeType::Gateway,
        description: None,
        fw_version: None,
        sw_version: None,
        device_sdk_version: None,
        auth_info: DeviceAuthInfo {
            auth_type: AuthType::Secret,
            secret: Some("s3cret-value".to_owned()),
            secondary_secret: None,
            fingerprint: None,
            secondary_fingerprint: None,
            secure_access: false,
            timeout: 0,
        },
        product_id: "smartwater".to_owned(),
        product_name: "Smart water meter".to_owned(),
        status: DeviceStatus::Online,
        create_time: "20240102T030405Z".to_owned(),
        connection_status_update_time: Some("2024-01-02T03:04:06.000Z".to_owned()),
        active_time: None,
        tags: Vec::new(),
        extension_info: Some(json!({"floor": 1})),
    }
}

fn text<T: serde::Serialize>(value: &T) -> String {
    String::from_utf8(to_vec(value)).unwrap()
}

#[test]
fn show_response_shape() {
    let json = text(&shown_device());
    for written in [
        r#""node_type":"GATEWAY""#,
        r#""status":"ONLINE""#,
        r#""auth_info":{"auth_type":"SECRET","secret":"s3cret-value","secure_access":false,"timeout":0}"#,
        r#""tags":[]"#,
        r#""extension_info":{"floor":1}"#,
        r#""connection_status_update_time":"2024-01-02T03:04:06.000Z""#,
    ] {
        assert!(json.contains(written), "{written} missing from {json}");
    }
    for omitted in ["fw_version", "active_time", "fingerprint", "description", "null"] {
        assert!(!json.contains(omitted), "{omitted} should be omitted: {json}");
    }
}

#[test]
fn update_response_omits_the_secret() {
    let mut device = shown_device();
    device.auth_info.secret = None;
    let json = text(&device);
    assert!(
        json.contains(r#""auth_info":{"auth_type":"SECRET","secure_access":false,"timeout":0}"#),
        "{json}"
    );
}

#[test]
fn response_round_trips_and_reads_freezed() {
    let device = shown_device();
    let back: DeviceResponse = from_bytes(&to_vec(&device)).unwrap();
    assert_eq!(back, device);
    let status: DeviceStatus = from_bytes(br#""FREEZED""#).unwrap();
    assert_eq!(status, DeviceStatus::Frozen);
    assert_eq!(text(&status), r#""FROZEN""#);
}

#[test]
fn wire_spellings() {
    let statuses = [
        DeviceStatus::Inactive,
        DeviceStatus::Online,
        DeviceStatus::Offline,
        DeviceStatus::Abnormal,
        DeviceStatus::Frozen,
    ];
    for status in statuses {
        assert_eq!(text(&status), format!("\"{}\"", status.as_str()));
    }
    for node_type in [NodeType::Gateway, NodeType::Endpoint, NodeType::Unknown] {
        assert_eq!(text(&node_type), format!("\"{}\"", node_type.as_str()));
    }
    for auth_type in [AuthType::Secret, AuthType::Certificates] {
        assert_eq!(text(&auth_type), format!("\"{}\"", auth_type.as_str()));
    }
}

#[test]
fn summary_never_carries_the_secret() {
    let mut device = shown_device();
    device.tags = vec![Tag { tag_key: "floor".to_owned(), tag_value: Some("1".to_owned()) }];
    let summary = DeviceSummary::from(&device);
    let json = text(&summary);
    assert!(!json.contains("secret") && !json.contains("auth_info"), "{json}");
    assert!(!json.contains("create_time") && !json.contains("extension_info"), "{json}");
    assert!(json.contains(r#""tags":[{"tag_key":"floor","tag_value":"1"}]"#), "{json}");
    assert_eq!(summary.device_id, device.device_id);
    assert_eq!(summary.status, DeviceStatus::Online);
}

#[test]
fn debug_output_never_shows_the_secret() {
    let debug = format!("{:?}", shown_device());
    assert!(!debug.contains("s3cret-value"), "{debug}");
}

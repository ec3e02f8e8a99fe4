//! AddDevice: realistic bodies, defaults, and one test per rule.

use simd_json::prelude::*;

use super::rejected_at;
use crate::device::{
    is_valid_id_chars, is_valid_secret, validate_add, AddDeviceRequest, AuthInfo, AuthType, InitialShadow,
    NodeType, ValidatedDevice,
};
use crate::error::ValidationError;
use crate::json::from_bytes;

const SECRET: &str = "3b935a250c50dc2c6d481d048cefdc3c";
const SHA1_FINGERPRINT: &str = "dc0f1016f495157344ac5f1296335cff725ef22f";

fn minimal() -> AddDeviceRequest {
    AddDeviceRequest {
        node_id: "node1".to_owned(),
        product_id: "smartwater".to_owned(),
        ..Default::default()
    }
}

fn add(request: AddDeviceRequest) -> Result<ValidatedDevice, ValidationError> {
    validate_add(request)
}

fn with_auth(auth_info: AuthInfo) -> Result<ValidatedDevice, ValidationError> {
    add(AddDeviceRequest { auth_info: Some(auth_info), ..minimal() })
}

fn parse(body: &str) -> AddDeviceRequest {
    from_bytes(body.as_bytes()).expect("body parses")
}

#[test]
fn realistic_body_is_validated() {
    let request = parse(
        r#"{
        "node_id": "ABC123456789",
        "device_name": "dianadevice",
        "product_id": "b640f4c203b7910fc3cbd446ed437cbd",
        "auth_info": {"auth_type": "SECRET", "secure_access": true,
                      "secret": "3b935a250c50dc2c6d481d048cefdc3c", "timeout": 300},
        "description": "watermeter device",
        "extension_info": {"aaa": "xxx", "bbb": 0},
        "shadow": [{"service_id": "water", "desired": {"level": 30}}]
    }"#,
    );
    let device = add(request).unwrap();
    assert_eq!(device.device_id, "b640f4c203b7910fc3cbd446ed437cbd_ABC123456789");
    assert_eq!(device.gateway_id, device.device_id);
    assert_eq!(device.node_type(), NodeType::Gateway);
    assert_eq!(device.device_name, "dianadevice");
    assert_eq!(device.auth_type, AuthType::Secret);
    assert_eq!(device.secret.as_deref(), Some(SECRET));
    assert!(device.secure_access);
    assert_eq!(device.timeout_s, 300);
    assert_eq!(device.description.as_deref(), Some("watermeter device"));
    let extension: simd_json::OwnedValue = from_bytes(device.extension_info.unwrap().as_bytes()).unwrap();
    assert_eq!(extension.get_str("aaa"), Some("xxx"));
    assert_eq!(
        device.initial_shadow_json.as_deref(),
        Some(r#"[{"service_id":"water","desired":{"level":30}}]"#)
    );
}

#[test]
fn defaults_for_a_minimal_body() {
    let device = add(parse(r#"{"node_id":"node1","product_id":"smartwater"}"#)).unwrap();
    assert_eq!(device.device_id, "smartwater_node1");
    assert_eq!(device.gateway_id, "smartwater_node1");
    assert_eq!(device.device_name, "node1", "device_name defaults to node_id");
    assert_eq!(device.auth_type, AuthType::Secret);
    assert_eq!(device.secret, None, "the caller generates the secret");
    assert_eq!(device.fingerprint, None);
    assert!(!device.secure_access);
    assert_eq!(device.timeout_s, 0);
    assert_eq!((device.app_id, device.extension_info, device.initial_shadow_json), (None, None, None));
}

#[test]
fn longest_default_device_id_is_valid() {
    let request =
        AddDeviceRequest { node_id: "n".repeat(64), product_id: "p".repeat(36), ..Default::default() };
    assert_eq!(add(request).unwrap().device_id.len(), 101);
}

#[test]
fn node_id_rules() {
    let with_node = |node_id: &str| add(AddDeviceRequest { node_id: node_id.to_owned(), ..minimal() });
    assert!(with_node(&"n".repeat(64)).is_ok());
    assert!(with_node("AA:BB").is_err());
    rejected_at(with_node(&"n".repeat(65)), "node_id");
    rejected_at(with_node("a b"), "node_id");
    assert_eq!(rejected_at(with_node(""), "node_id"), "node_id is required");
    rejected_at(add(parse(r#"{"product_id":"p"}"#)), "node_id");
    rejected_at(add(parse(r#"{"node_id":null,"product_id":"p"}"#)), "node_id");
}

#[test]
fn product_id_rules() {
    let with_product =
        |product_id: &str| add(AddDeviceRequest { product_id: product_id.to_owned(), ..minimal() });
    assert!(with_product(&"p".repeat(36)).is_ok());
    rejected_at(with_product(&"p".repeat(37)), "product_id");
    rejected_at(with_product(""), "product_id");
    rejected_at(with_product("p/q"), "product_id");
}

#[test]
fn device_id_rules() {
    let with_id =
        |device_id: &str| add(AddDeviceRequest { device_id: Some(device_id.to_owned()), ..minimal() });
    assert_eq!(with_id(&"d".repeat(128)).unwrap().device_id.len(), 128);
    assert_eq!(with_id("my-device_1").unwrap().gateway_id, "my-device_1");
    rejected_at(with_id(&"d".repeat(129)), "device_id");
    let message = rejected_at(with_id("dev#1"), "device_id");
    assert_eq!(message, "device_id 'dev#1' may contain only letters, digits, '_' and '-'");
    rejected_at(with_id(""), "device_id");
}

#[test]
fn name_and_description_limits() {
    assert!(add(AddDeviceRequest { device_name: Some("名".repeat(256)), ..minimal() }).is_ok());
    rejected_at(add(AddDeviceRequest { device_name: Some("n".repeat(257)), ..minimal() }), "device_name");
    assert!(add(AddDeviceRequest { description: Some("d".repeat(2048)), ..minimal() }).is_ok());
    rejected_at(add(AddDeviceRequest { description: Some("d".repeat(2049)), ..minimal() }), "description");
}

#[test]
fn secret_rules() {
    let with_secret =
        |secret: &str| with_auth(AuthInfo { secret: Some(secret.to_owned()), ..Default::default() });
    assert_eq!(with_secret("12345678").unwrap().secret.as_deref(), Some("12345678"));
    assert!(with_secret(&"s".repeat(32)).is_ok());
    for bad in ["1234567", &"s".repeat(33), "secret!!1", "päss-word", ""] {
        let message = rejected_at(with_secret(bad), "auth_info.secret");
        assert!(bad.is_empty() || !message.contains(bad), "the secret must not be echoed: {message}");
    }
}

#[test]
fn auth_type_rules() {
    let typed =
        |auth_type: &str| with_auth(AuthInfo { auth_type: Some(auth_type.to_owned()), ..Default::default() });
    assert_eq!(typed("SECRET").unwrap().auth_type, AuthType::Secret);
    let message = rejected_at(typed("secret"), "auth_info.auth_type");
    assert_eq!(message, "auth_type 'secret' is not one of: SECRET, CERTIFICATES");
    rejected_at(typed("TOKEN"), "auth_info.auth_type");
}

fn certificates(fingerprint: Option<&str>, secret: Option<&str>) -> Result<ValidatedDevice, ValidationError> {
    with_auth(AuthInfo {
        auth_type: Some("CERTIFICATES".to_owned()),
        fingerprint: fingerprint.map(str::to_owned),
        secret: secret.map(str::to_owned),
        ..Default::default()
    })
}

#[test]
fn certificate_devices_need_a_fingerprint_and_no_secret() {
    let device = certificates(Some(SHA1_FINGERPRINT), None).unwrap();
    assert_eq!(device.auth_type, AuthType::Certificates);
    assert_eq!(device.fingerprint.as_deref(), Some(SHA1_FINGERPRINT));
    assert_eq!(device.secret, None);
    assert!(certificates(Some(&"A".repeat(64)), None).is_ok(), "SHA-256, upper case");
    let message = rejected_at(certificates(None, None), "auth_info.fingerprint");
    assert_eq!(message, "fingerprint is required when auth_type is CERTIFICATES");
    rejected_at(certificates(Some(""), None), "auth_info.fingerprint");
    rejected_at(certificates(Some(&"a".repeat(39)), None), "auth_info.fingerprint");
    rejected_at(certificates(Some(&"a".repeat(41)), None), "auth_info.fingerprint");
    rejected_at(certificates(Some(&"g".repeat(40)), None), "auth_info.fingerprint");
    let message = rejected_at(certificates(Some(SHA1_FINGERPRINT), Some(SECRET)), "auth_info.secret");
    assert_eq!(message, "secret must not be given when auth_type is CERTIFICATES");
}

#[test]
fn secret_devices_ignore_a_fingerprint() {
    let device = with_auth(AuthInfo {
        fingerprint: Some("not hex".to_owned()),
        secondary_fingerprint: Some("nor this".to_owned()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        (device.auth_type, device.fingerprint, device.secondary_fingerprint),
        (AuthType::Secret, None, None)
    );
}

#[test]
fn secondary_credentials_are_checked_like_the_primary_ones() {
    let secondary =
        |secret: &str| AuthInfo { secondary_secret: Some(secret.to_owned()), ..Default::default() };
    assert_eq!(
        with_auth(secondary("second-secret-1")).unwrap().secondary_secret.as_deref(),
        Some("second-secret-1")
    );
    assert!(with_auth(secondary("short")).is_err());
    let certificates = |secondary: &str| AuthInfo {
        auth_type: Some("CERTIFICATES".to_owned()),
        fingerprint: Some(SHA1_FINGERPRINT.to_owned()),
        secondary_fingerprint: Some(secondary.to_owned()),
        ..Default::default()
    };
    let sha256 = "AB".repeat(32);
    assert_eq!(with_auth(certificates(&sha256)).unwrap().secondary_fingerprint, Some(sha256));
    assert!(with_auth(certificates("abc")).is_err());
    let with_secondary_secret =
        AuthInfo { secondary_secret: Some("second-secret-1".to_owned()), ..certificates(SHA1_FINGERPRINT) };
    assert!(with_auth(with_secondary_secret).is_err(), "a CERTIFICATES device has no secret");
}

#[test]
fn timeout_rules() {
    let with_timeout = |timeout: i64| with_auth(AuthInfo { timeout: Some(timeout), ..Default::default() });
    assert_eq!(with_timeout(0).unwrap().timeout_s, 0);
    assert_eq!(with_timeout(2_147_483_647).unwrap().timeout_s, 2_147_483_647);
    rejected_at(with_timeout(-1), "auth_info.timeout");
    rejected_at(with_timeout(2_147_483_648), "auth_info.timeout");
}

#[test]
fn gateway_id_makes_a_sub_device() {
    let with_gateway =
        |gateway_id: &str| add(AddDeviceRequest { gateway_id: Some(gateway_id.to_owned()), ..minimal() });
    let device = with_gateway("gw_1").unwrap();
    assert_eq!(device.gateway_id, "gw_1");
    assert_eq!(device.node_type(), NodeType::Endpoint);
    rejected_at(with_gateway(&"g".repeat(129)), "gateway_id");
    rejected_at(with_gateway("gw 1"), "gateway_id");
}

#[test]
fn app_id_rules() {
    let with_app = |app_id: &str| add(AddDeviceRequest { app_id: Some(app_id.to_owned()), ..minimal() });
    assert_eq!(with_app(&"a".repeat(36)).unwrap().app_id.map(|id| id.len()), Some(36));
    rejected_at(with_app(&"a".repeat(37)), "app_id");
}

#[test]
fn extension_info_is_at_most_1_kib_of_json() {
    // {"k":"…"} is 8 bytes of framing around the string.
    let sized = |bytes: usize| {
        parse(&format!(
            r#"{{"node_id":"n","product_id":"p","extension_info":{{"k":"{}"}}}}"#,
            "x".repeat(bytes - 8)
        ))
    };
    assert_eq!(add(sized(1024)).unwrap().extension_info.unwrap().len(), 1024);
    let message = rejected_at(add(sized(1025)), "extension_info");
    assert_eq!(message, "extension_info is 1025 bytes of JSON; the limit is 1024");
    let any_json = add(parse(r#"{"node_id":"n","product_id":"p","extension_info":[1, "two"]}"#)).unwrap();
    assert_eq!(any_json.extension_info.as_deref(), Some(r#"[1,"two"]"#));
    let null = add(parse(r#"{"node_id":"n","product_id":"p","extension_info":null}"#)).unwrap();
    assert_eq!(null.extension_info, None);
}

fn with_shadow(shadow_json: &str) -> Result<ValidatedDevice, ValidationError> {
    add(parse(&format!(r#"{{"node_id":"n","product_id":"p","shadow":{shadow_json}}}"#)))
}

#[test]
fn initial_shadow_rules() {
    let device =
        with_shadow(r#"[{"service_id":"a","desired":{}},{"service_id":"b","desired":{"x":1}}]"#).unwrap();
    assert_eq!(
        device.initial_shadow_json.as_deref(),
        Some(r#"[{"service_id":"a","desired":{}},{"service_id":"b","desired":{"x":1}}]"#)
    );
    assert_eq!(with_shadow("[]").unwrap().initial_shadow_json, None);
    rejected_at(with_shadow(r#"[{"desired":{}}]"#), "shadow[0].service_id");
    rejected_at(
        with_shadow(&format!(r#"[{{"service_id":"{}","desired":{{}}}}]"#, "s".repeat(65))),
        "shadow[0].service_id",
    );
    let message = rejected_at(with_shadow(r#"[{"service_id":"a"}]"#), "shadow[0].desired");
    assert_eq!(message, "desired is required and must be a JSON object");
    rejected_at(with_shadow(r#"[{"service_id":"a","desired":[1]}]"#), "shadow[0].desired");
    rejected_at(with_shadow(r#"[{"service_id":"a","desired":"on"}]"#), "shadow[0].desired");
    let message = rejected_at(
        with_shadow(r#"[{"service_id":"a","desired":{}},{"service_id":"a","desired":{}}]"#),
        "shadow[1].service_id",
    );
    assert_eq!(message, "duplicate service_id 'a'");
    rejected_at(with_shadow(r#"[{"service_id":"a","desired":{"a.b":1}}]"#), "shadow[0].desired.a.b");
    rejected_at(with_shadow(r#"[{"service_id":"a","desired":{"$x":1}}]"#), "shadow[0].desired.$x");
    rejected_at(with_shadow(r#"[{"service_id":"a","desired":{"":1}}]"#), "shadow[0].desired.");
}

#[test]
fn at_most_500_shadow_entries() {
    let entries = |count: usize| {
        (0..count)
            .map(|index| InitialShadow { service_id: format!("s{index}"), desired: simd_json::json!({}) })
            .collect()
    };
    assert!(add(AddDeviceRequest { shadow: Some(entries(500)), ..minimal() }).is_ok());
    rejected_at(add(AddDeviceRequest { shadow: Some(entries(501)), ..minimal() }), "shadow");
}

#[test]
fn character_checks() {
    assert!(is_valid_id_chars("Az09_-"));
    assert!(!is_valid_id_chars(""));
    assert!(!is_valid_id_chars("a.b"));
    assert!(!is_valid_id_chars("ü"));
    assert!(is_valid_secret("abcdefgh"));
    assert!(is_valid_secret(&"A".repeat(32)));
    assert!(!is_valid_secret("abcdefg"));
    assert!(!is_valid_secret(&"A".repeat(33)));
    assert!(!is_valid_secret("abcdefg!"));
}

#[test]
fn debug_output_never_shows_the_secret() {
    let request = AddDeviceRequest {
        auth_info: Some(AuthInfo { secret: Some(SECRET.to_owned()), ..Default::default() }),
        ..minimal()
    };
    let request_debug = format!("{request:?}");
    let device_debug = format!("{:?}", add(request).unwrap());
    for debug in [request_debug, device_debug] {
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }
}

//! UpdateDevice: the changeable fields and the ones that are not.

use super::rejected_at;
use crate::device::{validate_update, UpdateAuthInfo, UpdateDeviceRequest, ValidatedUpdate};
use crate::json::from_bytes;

fn parse(body: &str) -> UpdateDeviceRequest {
    from_bytes(body.as_bytes()).expect("body parses")
}

#[test]
fn realistic_body_is_validated() {
    let update = validate_update(parse(
        r#"{"device_name":"meter-7","description":"basement","extension_info":{"floor":-1},
            "auth_info":{"secure_access":true,"timeout":600}}"#,
    ))
    .unwrap();
    assert_eq!(
        update,
        ValidatedUpdate {
            device_name: Some("meter-7".to_owned()),
            description: Some("basement".to_owned()),
            extension_info: Some(r#"{"floor":-1}"#.to_owned()),
            secure_access: Some(true),
            timeout_s: Some(600),
        }
    );
}

#[test]
fn empty_body_changes_nothing() {
    assert_eq!(validate_update(parse("{}")).unwrap(), ValidatedUpdate::default());
}

#[test]
fn secret_cannot_be_changed_here() {
    let message =
        rejected_at(validate_update(parse(r#"{"auth_info":{"secret":"newsecret123"}}"#)), "auth_info.secret");
    assert!(message.contains("ResetDeviceSecret"), "{message}");
    assert!(!message.contains("newsecret123"), "{message}");
    rejected_at(
        validate_update(parse(r#"{"auth_info":{"fingerprint":"dc0f1016f495157344ac5f1296335cff725ef22f"}}"#)),
        "auth_info.fingerprint",
    );
}

#[test]
fn update_applies_the_add_rules() {
    let update = |request: UpdateDeviceRequest| validate_update(request);
    rejected_at(
        update(UpdateDeviceRequest { device_name: Some("n".repeat(257)), ..Default::default() }),
        "device_name",
    );
    rejected_at(
        update(UpdateDeviceRequest { description: Some("d".repeat(2049)), ..Default::default() }),
        "description",
    );
    let timeout = |timeout: i64| UpdateDeviceRequest {
        auth_info: Some(UpdateAuthInfo { timeout: Some(timeout), ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(update(timeout(0)).unwrap().timeout_s, Some(0));
    rejected_at(update(timeout(-5)), "auth_info.timeout");
    let big = format!(r#"{{"extension_info":{{"k":"{}"}}}}"#, "x".repeat(1100));
    rejected_at(update(parse(&big)), "extension_info");
}

#[test]
fn debug_output_never_shows_the_secret() {
    let request = UpdateDeviceRequest {
        auth_info: Some(UpdateAuthInfo { secret: Some("newsecret123".to_owned()), ..Default::default() }),
        ..Default::default()
    };
    let debug = format!("{request:?}");
    assert!(!debug.contains("newsecret123"), "{debug}");
}

//! The spec's password vector, the clientId grammar, and `check_login`'s order and codes.

use super::*;
use crate::mqtt::codec::MqttVersion;

const SECRET: &str = "12345678";
const TIMESTAMP: &str = "2025041401";
/// Spec §1.2, verified against the Python, Go and C SDKs.
const VECTOR_PASSWORD: &str = "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a";
/// 2025-04-14T01:30:00Z, inside the vector's hour.
const NOW_UNIX_S: i64 = 1_744_594_200;
const DEVICE_ID: &str = "product_1_node-1";

fn connect(client_id: &str, username: Option<&str>, password: Option<&str>, keep_alive_s: u16) -> Connect {
    Connect {
        version: MqttVersion::V4,
        client_id: client_id.into(),
        username: username.map(Into::into),
        password: password.map(|password| password.as_bytes().to_vec()),
        keep_alive_s,
        clean_session: true,
        has_will: false,
    }
}

/// A login that passes with signature type `sig` at `timestamp`.
fn good_connect(sig: char, timestamp: &str) -> Connect {
    let password = device_password(SECRET, timestamp);
    connect(&format!("{DEVICE_ID}_0_{sig}_{timestamp}"), Some(DEVICE_ID), Some(&password), 120)
}

fn refusal_code(result: Result<(), LoginRefusal>) -> ConnectCode {
    result.expect_err("the login must be refused").code
}

#[test]
fn password_matches_the_spec_vector() {
    assert_eq!(device_password(SECRET, TIMESTAMP), VECTOR_PASSWORD);
}

#[test]
fn client_id_is_parsed_from_the_right() {
    assert_eq!(
        parse_client_id("product_1_node-1_0_1_2025041401"),
        Ok(ClientId {
            device_id: "product_1_node-1",
            signature_type: SignatureType::TimestampChecked,
            timestamp: "2025041401"
        })
    );
    let parsed = parse_client_id("d_0_0_0_2024022923").unwrap();
    assert_eq!((parsed.device_id, parsed.signature_type), ("d_0", SignatureType::TimestampUnchecked));
    assert_eq!(device_id_of("a_b_c_0_0_2025041401"), Some("a_b_c"));
    assert_eq!(device_id_of("not-a-client-id"), None);
}

#[test]
fn bad_client_ids_are_refused_with_the_field_at_fault() {
    let cases = [
        ("", LoginError::Format("fewer than 4 fields")),
        ("device", LoginError::Format("fewer than 4 fields")),
        ("device_0_2025041401", LoginError::Format("fewer than 4 fields")),
        ("0_1_2025041401", LoginError::Format("fewer than 4 fields")),
        ("_0_1_2025041401", LoginError::DeviceId),
        ("dev/ice_0_1_2025041401", LoginError::DeviceId),
        ("dev#_0_1_2025041401", LoginError::DeviceId),
        ("device_3_1_2025041401", LoginError::IdentityType),
        ("device_0_2_2025041401", LoginError::SignatureType),
        ("device_0__2025041401", LoginError::SignatureType),
        ("device_0_1_", LoginError::Timestamp("not 10 digits")),
        ("device_0_1_202504140", LoginError::Timestamp("not 10 digits")),
        ("device_0_1_20250414011", LoginError::Timestamp("not 10 digits")),
        ("device_0_1_2025O41401", LoginError::Timestamp("not 10 digits")),
        ("device_0_1_+025041401", LoginError::Timestamp("not 10 digits")),
        ("device_0_1_2025131401", LoginError::Timestamp("month out of range")),
        ("device_0_1_2025001401", LoginError::Timestamp("month out of range")),
        ("device_0_1_2025040001", LoginError::Timestamp("day out of range")),
        ("device_0_1_2025043101", LoginError::Timestamp("day out of range")),
        ("device_0_1_2025022901", LoginError::Timestamp("day out of range")),
        ("device_0_1_1900022901", LoginError::Timestamp("day out of range")),
        ("device_0_1_2025041424", LoginError::Timestamp("hour out of range")),
    ];
    for (client_id, expected) in cases {
        assert_eq!(parse_client_id(client_id), Err(expected), "{client_id:?}");
    }
    assert!(parse_client_id("device_0_1_2000022923").is_ok(), "2000 is a leap year");
}

#[test]
fn length_limits() {
    let longest_device_id = "d".repeat(DEVICE_ID_MAX_CHARS);
    assert!(parse_client_id(&format!("{longest_device_id}_0_1_{TIMESTAMP}")).is_ok());
    let too_long_device_id = "d".repeat(DEVICE_ID_MAX_CHARS + 1);
    assert_eq!(parse_client_id(&format!("{too_long_device_id}_0_1_{TIMESTAMP}")), Err(LoginError::DeviceId));
    let too_long = format!("{}_0_1_{TIMESTAMP}", "d_".repeat(125));
    assert_eq!(parse_client_id(&too_long), Err(LoginError::TooLong { chars: 265 }));
}

#[test]
fn good_logins_pass() {
    assert_eq!(check_login(&good_connect('1', TIMESTAMP), Some(SECRET), NOW_UNIX_S), Ok(()));
    // Type 0: the timestamp is not compared with the clock.
    assert_eq!(check_login(&good_connect('0', "1999010100"), Some(SECRET), NOW_UNIX_S), Ok(()));
}

#[test]
fn keep_alive_bounds() {
    for (keep_alive_s, accepted) in [(0, false), (29, false), (30, true), (1200, true), (1201, false)] {
        let mut connect = good_connect('1', TIMESTAMP);
        connect.keep_alive_s = keep_alive_s;
        let result = check_login(&connect, Some(SECRET), NOW_UNIX_S);
        if accepted {
            assert_eq!(result, Ok(()), "keep-alive {keep_alive_s}");
        } else {
            assert_eq!(refusal_code(result), ConnectCode::IdentifierRejected, "keep-alive {keep_alive_s}");
        }
    }
}

#[test]
fn malformed_client_id_is_identifier_rejected() {
    let mut connect = good_connect('1', TIMESTAMP);
    connect.client_id = format!("{DEVICE_ID}_0_2_{TIMESTAMP}");
    let refusal = check_login(&connect, Some(SECRET), NOW_UNIX_S).unwrap_err();
    assert_eq!(refusal.code, ConnectCode::IdentifierRejected);
    assert!(refusal.reason.contains("signature type"), "{}", refusal.reason);
}

#[test]
fn username_must_be_the_device_id() {
    for username in [Some("product_1_node-2"), Some(""), None] {
        let mut connect = good_connect('1', TIMESTAMP);
        connect.username = username.map(Into::into);
        assert_eq!(
            refusal_code(check_login(&connect, Some(SECRET), NOW_UNIX_S)),
            ConnectCode::BadUsernameOrPassword
        );
    }
}

#[test]
fn unknown_device_is_bad_credentials() {
    let refusal = check_login(&good_connect('1', TIMESTAMP), None, NOW_UNIX_S).unwrap_err();
    assert_eq!(
        (refusal.code, refusal.reason.as_str()),
        (ConnectCode::BadUsernameOrPassword, "unknown device")
    );
}

#[test]
fn type_1_window_is_the_server_hour_plus_or_minus_one() {
    // Server time 2025-04-14T01:30Z; the hour before, the hour, the hour after pass.
    for (timestamp, accepted) in [
        ("2025041323", false),
        ("2025041400", true),
        ("2025041401", true),
        ("2025041402", true),
        ("2025041403", false),
    ] {
        let result = check_login(&good_connect('1', timestamp), Some(SECRET), NOW_UNIX_S);
        assert_eq!(result.is_ok(), accepted, "{timestamp}");
        if !accepted {
            assert_eq!(refusal_code(result), ConnectCode::BadUsernameOrPassword);
        }
    }
}

#[test]
fn type_1_window_edges_cross_days_and_years() {
    // 2025-01-01T00:00:00Z and 2024-12-31T23:59:59Z.
    let new_year_s = 1_735_689_600;
    for now_unix_s in [new_year_s, new_year_s - 1] {
        for timestamp in ["2024123123", "2025010100"] {
            assert_eq!(
                check_login(&good_connect('1', timestamp), Some(SECRET), now_unix_s),
                Ok(()),
                "{timestamp}"
            );
        }
    }
    assert!(check_login(&good_connect('1', "2024123122"), Some(SECRET), new_year_s).is_err());
    assert!(check_login(&good_connect('1', "2025010101"), Some(SECRET), new_year_s - 1).is_err());
    assert!(check_login(&good_connect('1', "2025010101"), Some(SECRET), new_year_s).is_ok());
    // 2024-02-29T00:10Z: the previous hour is on the 28th.
    assert!(check_login(&good_connect('1', "2024022823"), Some(SECRET), 1_709_165_400).is_ok());
}

#[test]
fn timestamp_is_checked_before_the_password() {
    let mut connect = good_connect('1', "2020010100");
    connect.password = Some(b"wrong".to_vec());
    let refusal = check_login(&connect, Some(SECRET), NOW_UNIX_S).unwrap_err();
    assert!(refusal.reason.contains("timestamp"), "{}", refusal.reason);
}

#[test]
fn wrong_or_missing_password_is_bad_credentials() {
    let mut wrong_secret = good_connect('1', TIMESTAMP);
    wrong_secret.password = Some(device_password("87654321", TIMESTAMP).into_bytes());
    let mut upper_case = good_connect('1', TIMESTAMP);
    upper_case.password = Some(VECTOR_PASSWORD.to_uppercase().into_bytes());
    let mut other_hour = good_connect('0', TIMESTAMP);
    other_hour.password = Some(device_password(SECRET, "2025041402").into_bytes());
    let mut missing = good_connect('1', TIMESTAMP);
    missing.password = None;
    for connect in [wrong_secret, upper_case, other_hour, missing] {
        let refusal = check_login(&connect, Some(SECRET), NOW_UNIX_S).unwrap_err();
        assert_eq!(refusal.code, ConnectCode::BadUsernameOrPassword);
        assert!(!refusal.reason.contains(SECRET) && !refusal.reason.contains(VECTOR_PASSWORD));
    }
}

#[test]
fn no_refusal_reason_leaks_the_secret_or_password() {
    let mut attempts = vec![good_connect('1', "2020010100"), good_connect('1', TIMESTAMP)];
    attempts[1].password = Some(b"x".to_vec());
    for connect in attempts {
        let reason = check_login(&connect, Some(SECRET), NOW_UNIX_S).unwrap_err().reason;
        assert!(!reason.contains(SECRET) && !reason.contains(VECTOR_PASSWORD), "{reason}");
    }
}

//! `device_login`: the CONNECT fields a device chooses, through the login checks.
//!
//! Input: a flags byte (bit 0: username present, bit 1: password present, bits 2–4: the
//! server clock's offset from the clientId's hour, −3…+4 h), the keep-alive (u16, big-endian
//! as on the wire), then `client_id \n username \n password` as text.

use protocol::mqtt::codec::{Connect, MqttVersion};
use protocol::mqtt::login::{self, SignatureType};

/// Keep-alive values the login accepts include this one.
const KEEP_ALIVE_VALID_S: u16 = 60;

pub fn device_login(data: &[u8]) {
    let Some((&[flags, keep_alive_high, keep_alive_low], text)) = data.split_first_chunk::<3>() else {
        return;
    };
    // mqttbytes hands the session UTF-8 strings; a CONNECT with others never decodes.
    let Ok(text) = std::str::from_utf8(text) else { return };
    let mut fields = text.splitn(3, '\n');
    let client_id = fields.next().unwrap_or_default();
    let username = fields.next().unwrap_or_default();
    let password = fields.next().unwrap_or_default();
    let connect = Connect {
        version: MqttVersion::V4,
        client_id: client_id.to_owned(),
        username: (flags & 1 != 0).then(|| username.to_owned()),
        password: (flags & 2 != 0).then(|| password.as_bytes().to_vec()),
        keep_alive_s: u16::from_be_bytes([keep_alive_high, keep_alive_low]),
        clean_session: true,
        has_will: false,
    };
    let offset_hours = i64::from((flags >> 2) & 7) - 3;
    let parsed = login::parse_client_id(client_id);
    assert_eq!(login::device_id_of(client_id), parsed.as_ref().ok().map(|p| p.device_id));
    // Half past the clientId's hour plus the offset: the window check then sees exactly
    // `offset_hours` between the two hours.
    let clientid_hour = parsed.as_ref().ok().and_then(|p| {
        protocol::time::parse_sdk_date(&format!("{}T{}0000Z", &p.timestamp[..8], &p.timestamp[8..])).ok()
    });
    let now = clientid_hour.map_or(crate::NOW_UNIX_S, |hour| hour + offset_hours * 3600 + 1800);
    assert!(login::check_login(&connect, None, now).is_err(), "an unknown device logged in");
    let accepted = login::check_login(&connect, Some(crate::SECRET), now).is_ok();
    let Ok(parsed) = parsed else {
        assert!(!accepted, "a clientId that does not parse logged in");
        return;
    };
    if accepted {
        assert_eq!(connect.username.as_deref(), Some(parsed.device_id));
        assert_eq!(
            connect.password.as_deref(),
            Some(login::device_password(crate::SECRET, parsed.timestamp).as_bytes())
        );
    }
    // The device that knows the secret always gets in (within the hour window for type 1).
    let honest = Connect {
        username: Some(parsed.device_id.to_owned()),
        password: Some(login::device_password(crate::SECRET, parsed.timestamp).into_bytes()),
        keep_alive_s: KEEP_ALIVE_VALID_S,
        ..connect
    };
    let in_window = clientid_hour.is_some() && offset_hours.abs() <= login::TIMESTAMP_SKEW_HOURS_MAX;
    if parsed.signature_type == SignatureType::TimestampUnchecked || in_window {
        if let Err(refusal) = login::check_login(&honest, Some(crate::SECRET), now) {
            panic!("a device with the right password was refused: {}", refusal.reason);
        }
    }
}

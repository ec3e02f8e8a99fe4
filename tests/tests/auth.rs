//! REST authentication (spec §4): a configured token, an `SDK-HMAC-SHA256` or a
//! `V11-HMAC-SHA256` signature lets a caller in; anything tampered with after signing, a stale
//! `X-Sdk-Date`, an unknown key or no credential at all is 401 `IOTDA.000002`; a valid
//! credential of one project is 403 on another project's paths; no error echoes a secret key.

use std::time::{SystemTime, UNIX_EPOCH};

use protocol::auth::{self, RequestParts};
use serde_json::json;
use tests::{http_request, Auth, Client, Engine, EngineOptions, HttpResponse, PROJECT_A, PROJECT_B};

fn sdk_auth_a() -> Auth {
    Auth::Sdk { ak: PROJECT_A.ak.into(), sk: PROJECT_A.sk.into() }
}

fn product(product_id: &str) -> serde_json::Value {
    json!({
        "product_id": product_id,
        "name": "signed meter",
        "device_type": "WaterMeter",
        "protocol_type": "MQTT",
        "service_capabilities": [],
    })
}

/// A refused request: the status, IoTDA's code, and no secret key anywhere in the answer.
fn assert_refused(answer: &HttpResponse, status: u16, error_code: &str, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.text());
    assert_eq!(answer.error_code(), error_code, "{what}");
    for secret_key in [PROJECT_A.sk, PROJECT_B.sk] {
        assert!(!answer.text().contains(secret_key), "{what}: the answer echoes a secret key");
    }
}

fn unix_ms_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn a_configured_token_is_accepted_and_any_other_refused() {
    let engine = Engine::start(EngineOptions::default());

    let answer = engine.client_a().get("products");
    assert_eq!(answer.status, 200, "{}", answer.text());

    let stranger = engine.client(PROJECT_A.project_id, Auth::Token("token-nobody-configured".into()));
    assert_refused(&stranger.get("products"), 401, "IOTDA.000002", "unknown token");
    let anonymous = engine.client(PROJECT_A.project_id, Auth::None);
    assert_refused(&anonymous.get("products"), 401, "IOTDA.000002", "no credential");
}

#[test]
fn sdk_signed_requests_with_a_query_or_a_body_are_accepted() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client(PROJECT_A.project_id, sdk_auth_a());

    let created = client.post("products", &product("signed-product"));
    assert_eq!(created.status, 201, "{}", created.text());
    // Not in canonical order on the wire: the server sorts the query itself.
    let listed = client.get("products?product_name=signed%20meter&limit=5&offset=0");
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.json()["products"][0]["product_id"], "signed-product");
    let deleted = client.delete("products/signed-product");
    assert_eq!(deleted.status, 204, "{}", deleted.text());
}

#[test]
fn v11_derived_signatures_are_accepted() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client(
        PROJECT_A.project_id,
        Auth::V11 { ak: PROJECT_A.ak.into(), sk: PROJECT_A.sk.into(), region: "cn-north-4".into() },
    );

    let created = client.post("products", &product("v11-product"));
    assert_eq!(created.status, 201, "{}", created.text());
    let shown = client.get("products/v11-product?app_id=default");
    assert_eq!(shown.status, 200, "{}", shown.text());
}

#[test]
fn anything_changed_after_signing_is_refused() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client(PROJECT_A.project_id, sdk_auth_a());
    let products = "/v5/iot/proj_a/products";
    let body = product("tampered").to_string();

    let headers = client.signed_headers("POST", products, body.as_bytes(), &[]);
    let other_body = product("tampered-too").to_string();
    let answer = http_request(engine.http, "POST", products, &headers, other_body.as_bytes());
    assert_refused(&answer, 401, "IOTDA.000002", "body changed");

    let mut headers = client.signed_headers("POST", products, body.as_bytes(), &[]);
    set_header(&mut headers, "Content-Type", "application/json;charset=UTF-8");
    let answer = http_request(engine.http, "POST", products, &headers, body.as_bytes());
    assert_refused(&answer, 401, "IOTDA.000002", "signed header changed");

    let mut headers = client.signed_headers("POST", products, body.as_bytes(), &[]);
    headers.retain(|(name, _)| !name.eq_ignore_ascii_case("Content-Type"));
    let answer = http_request(engine.http, "POST", products, &headers, body.as_bytes());
    assert_refused(&answer, 401, "IOTDA.000002", "signed header removed");

    let headers = client.signed_headers("GET", &format!("{products}?limit=5"), b"", &[]);
    let answer = http_request(engine.http, "GET", &format!("{products}?limit=6"), &headers, b"");
    assert_refused(&answer, 401, "IOTDA.000002", "query changed");

    let headers = client.signed_headers("GET", products, b"", &[]);
    let answer = http_request(engine.http, "GET", &format!("{products}?limit=5"), &headers, b"");
    assert_refused(&answer, 401, "IOTDA.000002", "query added");

    let headers = client.signed_headers("GET", "/v5/iot/proj_a/devices", b"", &[]);
    let answer = http_request(engine.http, "GET", products, &headers, b"");
    assert_refused(&answer, 401, "IOTDA.000002", "path changed");

    let headers = client.signed_headers("DELETE", &format!("{products}/tampered"), b"", &[]);
    let answer = http_request(engine.http, "GET", &format!("{products}/tampered"), &headers, b"");
    assert_refused(&answer, 401, "IOTDA.000002", "method changed");

    let answer = client.get("products/tampered");
    assert_eq!(answer.status, 404, "none of the tampered requests created anything: {}", answer.text());
}

fn set_header(headers: &mut [(String, String)], name: &str, value: &str) {
    let header = headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)).expect("header is present");
    header.1 = value.to_owned();
}

#[test]
fn an_sdk_date_more_than_fifteen_minutes_off_is_refused() {
    let engine = Engine::start(EngineOptions::default());
    let minute_ms = 60 * 1000;

    let five_minutes_old = protocol::time::format_t1(unix_ms_now() - 5 * minute_ms);
    let answer = send_signed_at(&engine, &five_minutes_old, None);
    assert_eq!(answer.status, 200, "within the 15-minute window: {}", answer.text());

    let twenty_minutes_old = protocol::time::format_t1(unix_ms_now() - 20 * minute_ms);
    let answer = send_signed_at(&engine, &twenty_minutes_old, None);
    assert_refused(&answer, 401, "IOTDA.000002", "SDK signature 20 minutes old");
    let answer = send_signed_at(&engine, &twenty_minutes_old, Some("cn-north-4"));
    assert_refused(&answer, 401, "IOTDA.000002", "V11 signature 20 minutes old");

    let twenty_minutes_ahead = protocol::time::format_t1(unix_ms_now() + 20 * minute_ms);
    let answer = send_signed_at(&engine, &twenty_minutes_ahead, None);
    assert_refused(&answer, 401, "IOTDA.000002", "SDK signature 20 minutes in the future");
}

/// `GET /v5/iot/proj_a/products`, signed with project A's key as of `sdk_date` (V11 when a
/// region is given), exactly as the SDK would have signed it then.
fn send_signed_at(engine: &Engine, sdk_date: &str, v11_region: Option<&str>) -> HttpResponse {
    let path = "/v5/iot/proj_a/products";
    let host = engine.http.to_string();
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/json".into()),
        ("Host".into(), host),
        ("X-Project-Id".into(), PROJECT_A.project_id.into()),
        ("X-Sdk-Date".into(), sdk_date.into()),
    ];
    let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    let parts = RequestParts { method: "GET", path, query: None, headers: &pairs, body: b"" };
    let authorization = match v11_region {
        Some(region) => auth::sign_v11_hmac_sha256(&parts, PROJECT_A.ak, PROJECT_A.sk, region),
        None => auth::sign_sdk_hmac_sha256(&parts, PROJECT_A.ak, PROJECT_A.sk),
    }
    .expect("signing");
    headers.push(("Authorization".into(), authorization));
    http_request(engine.http, "GET", path, &headers, b"")
}

#[test]
fn unknown_access_keys_and_wrong_secret_keys_are_refused() {
    let engine = Engine::start(EngineOptions::default());
    let signed_with = |ak: &str, sk: &str| -> Client {
        engine.client(PROJECT_A.project_id, Auth::Sdk { ak: ak.into(), sk: sk.into() })
    };

    let unknown_access_key = signed_with("AKNOBODYCONFIGURED01", PROJECT_A.sk);
    assert_refused(&unknown_access_key.get("products"), 401, "IOTDA.000002", "unknown AK");
    let wrong_secret_key = signed_with(PROJECT_A.ak, PROJECT_B.sk);
    assert_refused(&wrong_secret_key.get("products"), 401, "IOTDA.000002", "AK of A with SK of B");
    let v11_wrong_secret_key = engine.client(
        PROJECT_A.project_id,
        Auth::V11 { ak: PROJECT_A.ak.into(), sk: "not-the-secret-key".into(), region: "cn-north-4".into() },
    );
    assert_refused(&v11_wrong_secret_key.get("products"), 401, "IOTDA.000002", "V11 with a wrong SK");

    let garbage = vec![("Authorization".to_owned(), "SDK-HMAC-SHA256 nonsense".to_owned())];
    let answer = http_request(engine.http, "GET", "/v5/iot/proj_a/products", &garbage, b"");
    assert_refused(&answer, 401, "IOTDA.000002", "malformed Authorization");
}

#[test]
fn a_credential_of_project_a_is_forbidden_on_project_b() {
    let engine = Engine::start(EngineOptions::default());
    let token_a_on_b = engine.client(PROJECT_B.project_id, Auth::Token(PROJECT_A.token.into()));
    let key_a_on_b = engine.client(PROJECT_B.project_id, sdk_auth_a());

    for (client, what) in [(&token_a_on_b, "token of A"), (&key_a_on_b, "AK/SK of A")] {
        assert_refused(&client.get("products"), 403, "IOTDA.000021", what);
        assert_refused(&client.post("products", &product("smuggled")), 403, "IOTDA.000021", what);
        assert_refused(&client.get("devices"), 403, "IOTDA.000021", what);
    }
    let own = engine.client(PROJECT_B.project_id, Auth::Token(PROJECT_B.token.into())).get("products");
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(own.json()["page"]["count"], 0, "nothing was created in project B");
}

/// Regression: `X-Sdk-Content-Sha256` used to stand in for the body hash unchecked, so a
/// captured signed request could be replayed with another body and the old body's hash.
#[test]
fn a_signed_request_replayed_with_another_body_is_refused() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client(PROJECT_A.project_id, sdk_auth_a());
    let target = format!("/v5/iot/{}/products", PROJECT_A.project_id);
    let original = product("honest").to_string();
    let original_hash = auth::sha256_hex(original.as_bytes());
    let headers = client.signed_headers(
        "POST",
        &target,
        original.as_bytes(),
        &[("X-Sdk-Content-Sha256", &original_hash)],
    );
    let evil = product("evil").to_string();
    let replayed = http_request(engine.http, "POST", &target, &headers, evil.as_bytes());
    assert_refused(&replayed, 401, "IOTDA.000002", "replayed with another body");
    let unsigned = client.signed_headers(
        "POST",
        &target,
        evil.as_bytes(),
        &[("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD")],
    );
    let unsigned_body = http_request(engine.http, "POST", &target, &unsigned, evil.as_bytes());
    assert_refused(&unsigned_body, 401, "IOTDA.000002", "a JSON body declared UNSIGNED-PAYLOAD");
    assert_eq!(engine.client_a().get("products/evil").status, 404, "nothing was created");
    let honest = http_request(engine.http, "POST", &target, &headers, original.as_bytes());
    assert_eq!(honest.status, 201, "the genuine request still passes: {}", honest.text());
}

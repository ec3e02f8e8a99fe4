//! Signature tests: the verified vectors of spec §4.2/§4.3 verbatim, then the behaviour
//! `verify` must have around them (tampering, clock skew, missing headers, parsing).

use super::*;

const AK: &str = "AKTESTEXAMPLE0000001";
const SK: &str = "SKTESTEXAMPLEsecretkey0000000000000000001";
/// 2024-01-01T00:00:00Z, the `X-Sdk-Date` of every project vector.
const VECTOR_NOW_UNIX_S: i64 = 1_704_067_200;
const POST_BODY: &[u8] = br#"{"service_id": "water", "command_name": "ON_OFF", "paras": {"value": "ON"}}"#;
const POST_PATH: &str = "/v5/iot/proj123/devices/dev_001/commands";
const VECTOR_HEADERS: &[(&str, &[u8])] = &[
    ("Content-Type", b"application/json"),
    ("X-Project-Id", b"proj123"),
    ("X-Sdk-Date", b"20240101T000000Z"),
    ("Host", b"127.0.0.1:8080"),
];
const POST_SIGNATURE: &str = "d9e3c010168623e3f3871f9ebaa23f4e4cc8b8ea5ad4247b20b7a1b4744145b1";
const GET_SIGNATURE: &str = "47dcc18a280bf9c7228295f807c7dad3f276aba3f8034b42c1a4b84445d000af";
const V11_SIGNATURE: &str = "37e5b7f407a1f51704d74753789a2436ac854f7272fe8493ab1f7bad1a3f5460";

fn post_vector() -> RequestParts<'static> {
    RequestParts { method: "POST", path: POST_PATH, query: None, headers: VECTOR_HEADERS, body: POST_BODY }
}

fn get_vector() -> RequestParts<'static> {
    RequestParts {
        method: "GET",
        path: "/v5/iot/proj123/batchtasks",
        query: Some("limit=10&task_type=createCommands"),
        headers: VECTOR_HEADERS,
        body: b"",
    }
}

fn vector_signed_headers() -> Vec<String> {
    ["content-type", "host", "x-project-id", "x-sdk-date"].map(String::from).to_vec()
}

fn sdk_authorization(signature: &str) -> Authorization {
    Authorization::SdkHmacSha256 {
        access_key: AK.into(),
        signed_headers: vector_signed_headers(),
        signature: signature.into(),
    }
}

#[test]
fn public_doc_vector_signs_its_string_to_sign() {
    let string_to_sign = "SDK-HMAC-SHA256\n20191115T033655Z\n\
                          b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a";
    let signature = hmac_sha256(b"MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc", string_to_sign.as_bytes());
    assert_eq!(hex_lower(&signature), "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe");
}

#[test]
fn project_post_vector_canonical_request_hash_and_signature() {
    let canonical = canonical_request(&post_vector(), &vector_signed_headers()).unwrap();
    assert_eq!(
        canonical,
        "POST\n\
         /v5/iot/proj123/devices/dev_001/commands/\n\
         \n\
         content-type:application/json\n\
         host:127.0.0.1:8080\n\
         x-project-id:proj123\n\
         x-sdk-date:20240101T000000Z\n\
         \n\
         content-type;host;x-project-id;x-sdk-date\n\
         5dd36b1599313607fc920d98540d91be0156392c7ba950a11f1312fbca99c81c"
    );
    assert_eq!(
        sha256_hex(canonical.as_bytes()),
        "651cc5792a6d02b08e4d0078ad4880e52fb24d3d704934bc78957234c4ce31ba"
    );
    assert_eq!(
        sign_sdk_hmac_sha256(&post_vector(), AK, SK).unwrap(),
        format!(
            "SDK-HMAC-SHA256 Access={AK}, SignedHeaders=content-type;host;x-project-id;x-sdk-date, \
             Signature={POST_SIGNATURE}"
        )
    );
    assert_eq!(verify(&post_vector(), &sdk_authorization(POST_SIGNATURE), SK, VECTOR_NOW_UNIX_S), Ok(()));
}

#[test]
fn project_get_vector_with_query() {
    let canonical = canonical_request(&get_vector(), &vector_signed_headers()).unwrap();
    assert_eq!(canonical.lines().nth(2), Some("limit=10&task_type=createCommands"));
    assert_eq!(
        sha256_hex(canonical.as_bytes()),
        "a2d527cbec3299f30fee50b3c2eda52a1803cb91ed1ed012cf3194d447512f6a"
    );
    let authorization = sign_sdk_hmac_sha256(&get_vector(), AK, SK).unwrap();
    assert!(authorization.ends_with(&format!("Signature={GET_SIGNATURE}")), "{authorization}");
    // The query's wire order does not matter: it is canonicalised before hashing.
    let reordered = RequestParts { query: Some("task_type=createCommands&limit=10"), ..get_vector() };
    assert_eq!(verify(&reordered, &sdk_authorization(GET_SIGNATURE), SK, VECTOR_NOW_UNIX_S), Ok(()));
}

#[test]
fn v11_vector_signing_key_and_signature() {
    let info = "20240101/cn-north-4/iotdm";
    assert_eq!(
        digest::v11_signing_key(AK, SK, info),
        "b4dd3a007bb87116790239b025faeed6942f023a97c4ef4a2235f9d64b6c854f"
    );
    let authorization = sign_v11_hmac_sha256(&post_vector(), AK, SK, "cn-north-4").unwrap();
    assert_eq!(
        authorization,
        format!(
            "V11-HMAC-SHA256 Credential={AK}/{info}, SignedHeaders=content-type;host;x-project-id;x-sdk-date, \
             Signature={V11_SIGNATURE}"
        )
    );
    let parsed = parse_authorization(&authorization).unwrap();
    assert_eq!(parsed.region_id(), Some("cn-north-4"));
    assert_eq!(verify(&post_vector(), &parsed, SK, VECTOR_NOW_UNIX_S), Ok(()));
}

/// Cross-checked with a Python transcription of `Signer._process_canonical_request`: path
/// parameter `设备 a/b` quoted by the SDK's client, query `name="a b"`, `tag="温度"`, an empty
/// `marker`, and a signed `User-Agent`.
#[test]
fn percent_encoded_path_and_unicode_query_canonicalise_like_the_sdk() {
    let headers: &[(&str, &[u8])] = &[
        ("Content-Type", b"application/json"),
        ("X-Project-Id", b"proj123"),
        ("X-Sdk-Date", b"20240101T000000Z"),
        ("Host", b"127.0.0.1:8080"),
        ("User-Agent", b"huaweicloud-usdk-python/3.0; os/Linux; app/1234"),
    ];
    let req = RequestParts {
        method: "get",
        path: "/v5/iot/proj123/devices/%E8%AE%BE%E5%A4%87%20a%2Fb",
        query: Some("limit=10&marker=&name=a%20b&tag=%E6%B8%A9%E5%BA%A6"),
        headers,
        body: b"",
    };
    let signed_headers =
        ["content-type", "host", "user-agent", "x-project-id", "x-sdk-date"].map(String::from).to_vec();
    assert_eq!(
        canonical_request(&req, &signed_headers).unwrap(),
        "GET\n/v5/iot/proj123/devices/%E8%AE%BE%E5%A4%87%20a/b/\n\
         limit=10&marker=&name=a%20b&tag=%E6%B8%A9%E5%BA%A6\n\
         content-type:application/json\nhost:127.0.0.1:8080\n\
         user-agent:huaweicloud-usdk-python/3.0; os/Linux; app/1234\n\
         x-project-id:proj123\nx-sdk-date:20240101T000000Z\n\n\
         content-type;host;user-agent;x-project-id;x-sdk-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let authorization = sign_sdk_hmac_sha256(&req, AK, SK).unwrap();
    assert!(authorization.ends_with("8772db1e37ec6eeb181fe36a1d262b37a63874b56ccb9777017d921bb4a71810"));
}

#[test]
fn verify_accepts_what_the_signers_produce() {
    for authorization in [
        sign_sdk_hmac_sha256(&post_vector(), AK, SK).unwrap(),
        sign_v11_hmac_sha256(&post_vector(), AK, SK, "cn-north-4").unwrap(),
        sign_v11_hmac_sha256(&get_vector(), AK, SK, "ap-southeast-1").unwrap(),
    ] {
        let parsed = parse_authorization(&authorization).unwrap();
        assert_eq!(parsed.access_key(), AK);
        let req = if authorization.contains("ap-southeast-1") { get_vector() } else { post_vector() };
        assert_eq!(verify(&req, &parsed, SK, VECTOR_NOW_UNIX_S), Ok(()), "{authorization}");
    }
}

#[test]
fn tampering_with_any_signed_part_is_a_signature_mismatch() {
    let auth = sdk_authorization(POST_SIGNATURE);
    let mut tampered_headers = VECTOR_HEADERS.to_vec();
    tampered_headers[1] = ("X-Project-Id", b"proj124");
    let tampered = [
        RequestParts {
            body: br#"{"service_id": "water", "command_name": "ON_OFF", "paras": {"value": "OFF"}}"#,
            ..post_vector()
        },
        RequestParts { headers: &tampered_headers, ..post_vector() },
        RequestParts { query: Some("limit=10"), ..post_vector() },
        RequestParts { method: "PUT", ..post_vector() },
        RequestParts { path: "/v5/iot/proj123/devices/dev_002/commands", ..post_vector() },
    ];
    for req in tampered {
        assert_eq!(verify(&req, &auth, SK, VECTOR_NOW_UNIX_S), Err(AuthError::SignatureMismatch), "{req:?}");
    }
    assert_eq!(
        verify(&post_vector(), &auth, "wrong-secret", VECTOR_NOW_UNIX_S),
        Err(AuthError::SignatureMismatch)
    );
}

#[test]
fn unsigned_headers_may_change_freely() {
    let mut headers = VECTOR_HEADERS.to_vec();
    headers.push(("User-Agent", b"curl/8"));
    headers.push(("X-Request-Id", b"anything"));
    let req = RequestParts { headers: &headers, ..post_vector() };
    assert_eq!(verify(&req, &sdk_authorization(POST_SIGNATURE), SK, VECTOR_NOW_UNIX_S), Ok(()));
}

#[test]
fn clock_skew_beyond_fifteen_minutes_is_rejected_both_ways() {
    let auth = sdk_authorization(POST_SIGNATURE);
    let sixteen_minutes_s = 16 * 60;
    assert_eq!(
        verify(&post_vector(), &auth, SK, VECTOR_NOW_UNIX_S + sixteen_minutes_s),
        Err(AuthError::ClockSkew { skew_s: sixteen_minutes_s })
    );
    assert_eq!(
        verify(&post_vector(), &auth, SK, VECTOR_NOW_UNIX_S - sixteen_minutes_s),
        Err(AuthError::ClockSkew { skew_s: -sixteen_minutes_s })
    );
    assert_eq!(verify(&post_vector(), &auth, SK, VECTOR_NOW_UNIX_S + MAX_CLOCK_SKEW_S), Ok(()));
    assert_eq!(verify(&post_vector(), &auth, SK, VECTOR_NOW_UNIX_S - MAX_CLOCK_SKEW_S), Ok(()));
}

#[test]
fn missing_or_bad_date_is_rejected() {
    let auth = sdk_authorization(POST_SIGNATURE);
    let without_date: Vec<_> =
        VECTOR_HEADERS.iter().copied().filter(|(name, _)| *name != "X-Sdk-Date").collect();
    let req = RequestParts { headers: &without_date, ..post_vector() };
    assert_eq!(verify(&req, &auth, SK, VECTOR_NOW_UNIX_S), Err(AuthError::MissingDate));
    assert_eq!(sign_sdk_hmac_sha256(&req, AK, SK), Err(AuthError::MissingDate));

    let mut bad_date = without_date.clone();
    bad_date.push(("x-sdk-date", b"2024-01-01T00:00:00Z"));
    let req = RequestParts { headers: &bad_date, ..post_vector() };
    assert!(matches!(verify(&req, &auth, SK, VECTOR_NOW_UNIX_S), Err(AuthError::BadDate(_))));
}

#[test]
fn a_signed_header_missing_from_the_request_is_named() {
    let without_project: Vec<_> =
        VECTOR_HEADERS.iter().copied().filter(|(name, _)| *name != "X-Project-Id").collect();
    let req = RequestParts { headers: &without_project, ..post_vector() };
    assert_eq!(
        verify(&req, &sdk_authorization(POST_SIGNATURE), SK, VECTOR_NOW_UNIX_S),
        Err(AuthError::MissingSignedHeader("x-project-id".into()))
    );
}

#[test]
fn a_repeated_signed_header_is_rejected() {
    let mut headers = VECTOR_HEADERS.to_vec();
    headers.push(("x-project-id", b"proj999"));
    let req = RequestParts { headers: &headers, ..post_vector() };
    assert_eq!(
        verify(&req, &sdk_authorization(POST_SIGNATURE), SK, VECTOR_NOW_UNIX_S),
        Err(AuthError::DuplicateHeader("x-project-id".into()))
    );
}

#[test]
fn header_names_match_case_insensitively_and_values_are_trimmed() {
    let headers: &[(&str, &[u8])] = &[
        ("content-TYPE", b"application/json "),
        ("x-project-id", b"\tproj123"),
        ("X-SDK-DATE", b"20240101T000000Z"),
        ("HOST", b" 127.0.0.1:8080"),
    ];
    let req = RequestParts { headers, ..post_vector() };
    assert_eq!(verify(&req, &sdk_authorization(POST_SIGNATURE), SK, VECTOR_NOW_UNIX_S), Ok(()));
}

#[test]
fn v11_scope_must_match_the_date_and_name_iotdm() {
    let authorization = |info: &str| Authorization::V11HmacSha256 {
        access_key: AK.into(),
        info: info.into(),
        signed_headers: vector_signed_headers(),
        signature: V11_SIGNATURE.into(),
    };
    assert_eq!(
        verify(&post_vector(), &authorization("20240101/cn-north-4/iotdm"), SK, VECTOR_NOW_UNIX_S),
        Ok(())
    );
    assert!(matches!(
        verify(&post_vector(), &authorization("20231231/cn-north-4/iotdm"), SK, VECTOR_NOW_UNIX_S),
        Err(AuthError::BadCredentialScope(_))
    ));
    assert!(matches!(
        verify(&post_vector(), &authorization("20240101/cn-north-4/ecs"), SK, VECTOR_NOW_UNIX_S),
        Err(AuthError::BadCredentialScope(_))
    ));
    assert_eq!(
        verify(&post_vector(), &authorization("20240101/cn-north-1/iotdm"), SK, VECTOR_NOW_UNIX_S),
        Err(AuthError::SignatureMismatch)
    );
}

#[test]
fn payload_hash_header_replaces_the_body_hash_only_when_it_is_the_body_s_hash() {
    let mut headers = VECTOR_HEADERS.to_vec();
    headers.push(("X-Sdk-Content-Sha256", b"UNSIGNED-PAYLOAD"));
    let req = RequestParts { headers: &headers, body: b"--multipart--", ..post_vector() };
    let authorization = parse_authorization(&sign_sdk_hmac_sha256(&req, AK, SK).unwrap()).unwrap();
    // The client side signs as the SDK does: the declared value stands in for the body hash.
    assert!(canonical_request(&req, authorization.signed_headers()).unwrap().ends_with("\nUNSIGNED-PAYLOAD"));
    // The server refuses a body that no signature covers: every body of this API is JSON.
    assert_eq!(verify(&req, &authorization, SK, VECTOR_NOW_UNIX_S), Err(AuthError::PayloadHashMismatch));

    // Regression: a captured request replayed with another body and the old body's hash.
    let original_hash = sha256_hex(post_vector().body);
    let mut declared = VECTOR_HEADERS.to_vec();
    declared.push(("X-Sdk-Content-Sha256", original_hash.as_bytes()));
    let honest = RequestParts { headers: &declared, ..post_vector() };
    let signed = parse_authorization(&sign_sdk_hmac_sha256(&honest, AK, SK).unwrap()).unwrap();
    assert_eq!(verify(&honest, &signed, SK, VECTOR_NOW_UNIX_S), Ok(()));
    let replayed = RequestParts { body: br#"{"service_id": "evil"}"#, ..honest };
    assert_eq!(verify(&replayed, &signed, SK, VECTOR_NOW_UNIX_S), Err(AuthError::PayloadHashMismatch));
}

/// Current SDKs hash an empty body as the empty string even when `X-Sdk-Content-Sha256` is
/// set; older ones (and spec §4.2) used the header. Both must verify.
#[test]
fn empty_body_with_payload_hash_header_accepts_both_sdk_generations() {
    let mut headers = VECTOR_HEADERS.to_vec();
    headers.push(("X-Sdk-Content-Sha256", b"UNSIGNED-PAYLOAD"));
    let req = RequestParts { headers: &headers, ..get_vector() };
    let current = parse_authorization(&sign_sdk_hmac_sha256(&req, AK, SK).unwrap()).unwrap();
    let canonical = canonical_request(&req, current.signed_headers()).unwrap();
    assert!(canonical.ends_with("\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    assert_eq!(verify(&req, &current, SK, VECTOR_NOW_UNIX_S), Ok(()));

    let legacy_canonical =
        canonical_request_without_payload(&req, current.signed_headers()).unwrap() + "UNSIGNED-PAYLOAD";
    let legacy_signature = Signing::Sdk { secret_key: SK }.signature("20240101T000000Z", &legacy_canonical);
    let legacy = Authorization::SdkHmacSha256 {
        access_key: AK.into(),
        signed_headers: current.signed_headers().to_vec(),
        signature: legacy_signature,
    };
    assert_eq!(verify(&req, &legacy, SK, VECTOR_NOW_UNIX_S), Ok(()));
}

#[test]
fn non_utf8_signed_header_is_an_error() {
    let mut headers = VECTOR_HEADERS.to_vec();
    headers[1] = ("X-Project-Id", b"proj\xff");
    let req = RequestParts { headers: &headers, ..post_vector() };
    assert_eq!(
        canonical_request(&req, &vector_signed_headers()),
        Err(AuthError::NonUtf8Header("x-project-id".into()))
    );
}

#[test]
fn parse_authorization_reads_both_algorithms() {
    let sdk =
        "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=".to_owned() + POST_SIGNATURE;
    assert_eq!(
        parse_authorization(&sdk),
        Ok(Authorization::SdkHmacSha256 {
            access_key: "AK1".into(),
            signed_headers: vec!["host".into(), "x-sdk-date".into()],
            signature: POST_SIGNATURE.into(),
        })
    );
    let tight =
        format!("SDK-HMAC-SHA256 Access=AK1,SignedHeaders=host;x-sdk-date,  Signature={POST_SIGNATURE} ");
    assert_eq!(parse_authorization(&tight), parse_authorization(&sdk));

    let v11 = format!("V11-HMAC-SHA256 Credential=AK1/20240101/cn-north-4/iotdm, SignedHeaders=host, Signature={V11_SIGNATURE}");
    let parsed = parse_authorization(&v11).unwrap();
    assert_eq!(
        parsed,
        Authorization::V11HmacSha256 {
            access_key: "AK1".into(),
            info: "20240101/cn-north-4/iotdm".into(),
            signed_headers: vec!["host".into()],
            signature: V11_SIGNATURE.into(),
        }
    );
    assert_eq!(parsed.region_id(), Some("cn-north-4"));
}

#[test]
fn parse_authorization_is_strict_about_required_parts() {
    let signature = POST_SIGNATURE;
    let malformed = [
        "SDK-HMAC-SHA256".to_owned(),
        format!("SDK-HMAC-SHA256 Access=AK1, Signature={signature}"),
        format!("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host, Signature={signature}, Extra=1"),
        format!("SDK-HMAC-SHA256 Access=AK1, Access=AK2, SignedHeaders=host, Signature={signature}"),
        format!("SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature={signature}"),
        format!("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=, Signature={signature}"),
        format!("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;;date, Signature={signature}"),
        format!("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host, Signature={signature},"),
        "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host, Signature=abc".to_owned(),
        format!("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host, Signature={}", signature.to_uppercase()),
        format!("SDK-HMAC-SHA256 Credential=AK1, SignedHeaders=host, Signature={signature}"),
        format!("V11-HMAC-SHA256 Credential=AK1, SignedHeaders=host, Signature={signature}"),
        format!("V11-HMAC-SHA256 Credential=AK1/20240101/iotdm, SignedHeaders=host, Signature={signature}"),
        format!("V11-HMAC-SHA256 Credential=AK1/20240101//iotdm, SignedHeaders=host, Signature={signature}"),
        format!(
            "SDK-HMAC-SHA256 Access=AK1, SignedHeaders={}, Signature={signature}",
            vec!["h"; 65].join(";")
        ),
        format!("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host, Signature={signature}{}", " ".repeat(4096)),
    ];
    for value in malformed {
        assert!(
            matches!(parse_authorization(&value), Err(AuthError::MalformedAuthorization(_))),
            "{value}: {:?}",
            parse_authorization(&value)
        );
    }
}

#[test]
fn parse_authorization_names_unsupported_algorithms() {
    assert_eq!(
        parse_authorization("SDK-HMAC-SM3 Access=AK1, SignedHeaders=host, Signature=00"),
        Err(AuthError::UnsupportedAlgorithm("SDK-HMAC-SM3".into()))
    );
    assert_eq!(parse_authorization("Bearer token"), Err(AuthError::UnsupportedAlgorithm("Bearer".into())));
    assert_eq!(parse_authorization(""), Err(AuthError::UnsupportedAlgorithm(String::new())));
}

#[test]
fn errors_never_reveal_the_secret_or_the_expected_signature() {
    let auth = sdk_authorization(&"0".repeat(64));
    let error = verify(&post_vector(), &auth, SK, VECTOR_NOW_UNIX_S).unwrap_err();
    let message = format!("{error} {error:?}");
    assert!(!message.contains(SK) && !message.contains(POST_SIGNATURE), "{message}");
}

#[test]
fn constant_time_eq_compares_content_and_length() {
    assert!(constant_time_eq(b"", b""));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"xbc"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(!constant_time_eq(b"", b"a"));
    assert!(constant_time_eq(POST_SIGNATURE.as_bytes(), POST_SIGNATURE.as_bytes()));
    assert!(!constant_time_eq(POST_SIGNATURE.as_bytes(), GET_SIGNATURE.as_bytes()));
}

#[test]
fn digest_helpers_match_known_values() {
    assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(hex_lower(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    // RFC 4231 test case 2.
    assert_eq!(
        hex_lower(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn the_signer_skips_underscored_and_authorization_headers() {
    let mut headers = VECTOR_HEADERS.to_vec();
    headers.push(("X_Custom_Header", b"skipped"));
    headers.push(("Authorization", b"Bearer old"));
    let req = RequestParts { headers: &headers, ..post_vector() };
    assert_eq!(
        sign_sdk_hmac_sha256(&req, AK, SK).unwrap(),
        sign_sdk_hmac_sha256(&post_vector(), AK, SK).unwrap()
    );
}

//! A small HTTP/1.1 client: one request per connection, so every byte sent is visible here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protocol::auth::{self, RequestParts};

/// How a [`Client`] authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Token(String),
    /// `SDK-HMAC-SHA256`, as `huaweicloudsdkcore` signs.
    Sdk {
        ak: String,
        sk: String,
    },
    /// `V11-HMAC-SHA256`, the derived signature.
    V11 {
        ak: String,
        sk: String,
        region: String,
    },
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The IoTDA `error_code` of an error body.
    pub fn error_code(&self) -> String {
        self.json()["error_code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one raw request (`head` without the final blank line is completed with
/// `Content-Length` and `Connection: close`) and reads the whole answer.
pub fn http_request(
    address: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(address).expect("connecting to the engine");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut request = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).expect("sending the request head");
    stream.write_all(body).expect("sending the body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("reading the response");
    parse_response(&raw)
}

pub(crate) fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if let Some(length) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
        body.truncate(length.1.parse().expect("numeric content-length"));
    }
    HttpResponse { status, headers, body }
}

/// A client of one project's `/v5/iot/{project_id}/…` API.
#[derive(Debug, Clone)]
pub struct Client {
    pub address: SocketAddr,
    pub project_id: String,
    pub auth: Auth,
}

impl Client {
    pub fn new(address: SocketAddr, project_id: &str, auth: Auth) -> Client {
        Client { address, project_id: project_id.to_owned(), auth }
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        self.call("GET", path, b"")
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> HttpResponse {
        self.call("POST", path, body.to_string().as_bytes())
    }

    pub fn put(&self, path: &str, body: &serde_json::Value) -> HttpResponse {
        self.call("PUT", path, body.to_string().as_bytes())
    }

    pub fn delete(&self, path: &str) -> HttpResponse {
        self.call("DELETE", path, b"")
    }

    /// `path` is relative to `/v5/iot/{project_id}/` and may carry a query (`devices?limit=5`).
    pub fn call(&self, method: &str, path: &str, body: &[u8]) -> HttpResponse {
        let target = format!("/v5/iot/{}/{}", self.project_id, path.trim_start_matches('/'));
        let headers = self.signed_headers(method, &target, body, &[]);
        http_request(self.address, method, &target, &headers, body)
    }

    /// The headers the SDK would send for this request, signed per `self.auth`. `extra`
    /// headers are sent (and signed) too.
    pub fn signed_headers(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = vec![
            ("Content-Type".into(), "application/json".into()),
            ("Host".into(), self.address.to_string()),
        ];
        headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
        let authorization = match &self.auth {
            Auth::None => return headers,
            Auth::Token(token) => {
                headers.push(("X-Auth-Token".into(), token.clone()));
                return headers;
            }
            Auth::Sdk { ak, sk } | Auth::V11 { ak, sk, .. } => {
                headers.push(("X-Project-Id".into(), self.project_id.clone()));
                headers.push(("X-Sdk-Date".into(), sdk_date_now()));
                let pairs: Vec<(&str, &[u8])> =
                    headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
                let parts = RequestParts { method, path, query, headers: &pairs, body };
                match &self.auth {
                    Auth::V11 { region, .. } => auth::sign_v11_hmac_sha256(&parts, ak, sk, region),
                    _ => auth::sign_sdk_hmac_sha256(&parts, ak, sk),
                }
                .expect("signing")
            }
        };
        headers.push(("Authorization".into(), authorization));
        headers
    }
}

/// `X-Sdk-Date` for now.
pub fn sdk_date_now() -> String {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    protocol::time::format_t1(now_ms)
}

/// Asserts an IoTDA error answer: the status and the `error_code`.
pub fn assert_error(response: &HttpResponse, status: u16, error_code: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(response.error_code(), error_code, "{}", response.text());
}

/// Asserts a 400 `IOTDA.000006` whose `error_msg` names `field`.
pub fn assert_invalid(response: &HttpResponse, field: &str) {
    assert_error(response, 400, "IOTDA.000006");
    let message = response.json()["error_msg"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains(field), "error_msg {message:?} does not name {field}");
}

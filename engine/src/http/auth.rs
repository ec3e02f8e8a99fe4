//! Who is calling: maps a request's credential to the one project it belongs to (spec §4).
//!
//! - `X-Auth-Token`: compared against every configured token in constant time.
//! - `Authorization: SDK-HMAC-SHA256 …` / `V11-HMAC-SHA256 …`: the access key picks the secret
//!   key; `protocol::auth::verify` recomputes the signature over the exact request and compares
//!   in constant time, within the 15-minute date window.
//!
//! Failures say why in the error message (no such AK, signature mismatch, clock skew) but never
//! echo a secret or the expected signature.

use std::collections::HashMap;

use protocol::auth::{self, RequestParts};

use super::error::ApiError;
use crate::config::ProjectConfig;

#[derive(Default)]
pub struct Credentials {
    tokens: Vec<(String, String)>,
    secret_keys: HashMap<String, (String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("tokens", &self.tokens.len())
            .field("access_keys", &self.secret_keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    pub fn from_projects(projects: &[ProjectConfig]) -> Credentials {
        let mut credentials = Credentials::default();
        for project in projects {
            for token in &project.tokens {
                credentials.tokens.push((token.clone(), project.project_id.clone()));
            }
            for key in &project.access_keys {
                credentials.secret_keys.insert(key.ak.clone(), (key.sk.clone(), project.project_id.clone()));
            }
        }
        credentials
    }

    /// A cheap look at the headers before the body is read: a valid token, or an
    /// `Authorization` that parses and names a known access key. The signature itself needs
    /// the body and is checked by [`Credentials::authenticate`].
    pub fn precheck(&self, headers: &[(&str, &[u8])]) -> Result<(), ApiError> {
        self.presented(headers).map(|_| ())
    }

    /// The project of the request's credential, or 401.
    pub fn authenticate(&self, request: &RequestParts<'_>, now_unix_s: i64) -> Result<&str, ApiError> {
        match self.presented(request.headers)? {
            Presented::Token { project_id } => Ok(project_id),
            Presented::Signed { authorization, secret_key, project_id } => {
                auth::verify(request, &authorization, secret_key, now_unix_s)
                    .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
                Ok(project_id)
            }
        }
    }

    /// The credential the headers present: a valid token, or a signature by a known key.
    fn presented(&self, headers: &[(&str, &[u8])]) -> Result<Presented<'_>, ApiError> {
        if let Some(token) = header(headers, "x-auth-token") {
            let project_id = self
                .project_of_token(token)
                .ok_or_else(|| ApiError::Unauthorized("invalid X-Auth-Token".into()))?;
            return Ok(Presented::Token { project_id });
        }
        let authorization = header(headers, "authorization")
            .ok_or_else(|| ApiError::Unauthorized("no X-Auth-Token or Authorization header".into()))?;
        let authorization = std::str::from_utf8(authorization)
            .map_err(|_| ApiError::Unauthorized("Authorization header is not UTF-8".into()))?;
        let authorization =
            auth::parse_authorization(authorization).map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        let Some((secret_key, project_id)) = self.secret_keys.get(authorization.access_key()) else {
            return Err(ApiError::Unauthorized(format!(
                "unknown access key '{}'",
                authorization.access_key()
            )));
        };
        Ok(Presented::Signed { authorization, secret_key, project_id })
    }

    fn project_of_token(&self, token: &[u8]) -> Option<&str> {
        // Look at every token, so the time taken does not tell which prefix matched.
        let mut found = None;
        for (candidate, project_id) in &self.tokens {
            if auth::constant_time_eq(candidate.as_bytes(), token) {
                found = Some(project_id.as_str());
            }
        }
        found
    }
}

/// What a request's headers claim, before the signature is checked.
enum Presented<'a> {
    Token { project_id: &'a str },
    Signed { authorization: auth::Authorization, secret_key: &'a str, project_id: &'a str },
}

fn header<'a>(headers: &[(&str, &'a [u8])], name: &str) -> Option<&'a [u8]> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AccessKeyConfig;

    fn credentials() -> Credentials {
        Credentials::from_projects(&[
            ProjectConfig {
                project_id: "p1".into(),
                tokens: vec!["token-p1".into()],
                access_keys: vec![AccessKeyConfig { ak: "AK1".into(), sk: "SK1-secret".into() }],
            },
            ProjectConfig { project_id: "p2".into(), tokens: vec!["token-p2".into()], access_keys: vec![] },
        ])
    }

    fn parts<'a>(headers: &'a [(&'a str, &'a [u8])]) -> RequestParts<'a> {
        RequestParts { method: "GET", path: "/v5/iot/p1/products", query: None, headers, body: b"" }
    }

    #[test]
    fn tokens_map_to_their_project() {
        let credentials = credentials();
        assert_eq!(credentials.authenticate(&parts(&[("X-Auth-Token", b"token-p2")]), 0).unwrap(), "p2");
        assert!(credentials.authenticate(&parts(&[("X-Auth-Token", b"token-p3")]), 0).is_err());
        assert!(credentials.authenticate(&parts(&[]), 0).is_err());
    }

    #[test]
    fn signed_requests_map_to_the_key_s_project() {
        let credentials = credentials();
        let headers: Vec<(&str, &[u8])> = vec![
            ("Host", b"127.0.0.1:8080"),
            ("X-Sdk-Date", b"20240101T000000Z"),
            ("Content-Type", b"application/json"),
        ];
        let now = 1_704_067_200;
        let authorization = auth::sign_sdk_hmac_sha256(&parts(&headers), "AK1", "SK1-secret").unwrap();
        let mut signed = headers.clone();
        signed.push(("Authorization", authorization.as_bytes()));
        assert_eq!(credentials.authenticate(&parts(&signed), now).unwrap(), "p1");
        let wrong = auth::sign_sdk_hmac_sha256(&parts(&headers), "AK1", "not-the-secret").unwrap();
        let mut forged = headers.clone();
        forged.push(("Authorization", wrong.as_bytes()));
        let error = credentials.authenticate(&parts(&forged), now).unwrap_err();
        assert!(!error.to_string().contains("SK1-secret"));
    }
}

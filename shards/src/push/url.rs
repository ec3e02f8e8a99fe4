//! Parsing a push target's URL: `http://host[:port][/path][?query]` and nothing else.
//!
//! The rule engine should call [`parse_url`] when an HTTP_FORWARDING action is created, so a bad
//! URL is refused there; the sender parses again and discards the pushes of a target it cannot
//! reach (see the module doc of [`crate::push`]).
//!
//! Refused: any scheme but `http` (`https` with its own message — there is no TLS client here),
//! user info (`user:pass@`), fragments, port 0, empty or malformed hosts, and paths or queries
//! that are not a valid HTTP request target.

use std::net::Ipv6Addr;

/// The pieces of a push URL that a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    /// Host name or IP literal to connect to, IPv6 without brackets.
    pub host: String,
    /// TCP port, 80 when the URL names none.
    pub port: u16,
    /// The request target in origin form, at least `/`.
    pub path_and_query: String,
    /// The `Host` header: the host as written (IPv6 in brackets), with `:port` unless it is 80.
    pub authority: String,
}

const DEFAULT_PORT: u16 = 80;

/// Parses `http://host[:port][/path][?query]`.
pub fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    let rest = strip_scheme(url)?;
    if rest.contains('#') {
        return Err(format!("a push URL may not carry a fragment: {url}"));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority_text, target) = rest.split_at(authority_end);
    if authority_text.contains('@') {
        return Err(format!("user info in a push URL is not supported: {url}"));
    }
    let (host, host_for_header, port) =
        split_host_port(authority_text).map_err(|why| format!("{why}: {url}"))?;
    let path_and_query = match target {
        "" => "/".to_owned(),
        query if query.starts_with('?') => format!("/{query}"),
        path => path.to_owned(),
    };
    if path_and_query.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(format!("invalid path or query in push URL: {url}"));
    }
    let authority =
        if port == DEFAULT_PORT { host_for_header.to_owned() } else { format!("{host_for_header}:{port}") };
    Ok(ParsedUrl { host, port, path_and_query, authority })
}

fn strip_scheme(url: &str) -> Result<&str, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("a push URL must start with http://: {url}"));
    };
    if scheme.eq_ignore_ascii_case("http") {
        Ok(rest)
    } else if scheme.eq_ignore_ascii_case("https") {
        Err(format!("https is not supported: ringiot has no TLS client; use http:// ({url})"))
    } else {
        Err(format!("unsupported scheme {scheme:?} in push URL: {url}"))
    }
}

/// Returns (host to connect to, host as written for the `Host` header, port).
fn split_host_port(authority: &str) -> Result<(String, &str, u16), &'static str> {
    let (host_for_header, port_text) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or("unclosed IPv6 literal")?;
        let (literal, after) = authority.split_at(close + 1);
        literal[1..close].parse::<Ipv6Addr>().map_err(|_| "invalid IPv6 literal")?;
        match after {
            "" => (literal, None),
            port if port.starts_with(':') => (literal, Some(&port[1..])),
            _ => return Err("unexpected text after IPv6 literal"),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host = host_for_header.trim_start_matches('[').trim_end_matches(']');
    if !host_for_header.starts_with('[') && !is_valid_host_name(host) {
        return Err("invalid host");
    }
    let port = match port_text {
        None => DEFAULT_PORT,
        Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse::<u16>().ok().filter(|&port| port != 0).ok_or("invalid port")?
        }
        Some(_) => return Err("invalid port"),
    };
    Ok((host.to_owned(), host_for_header, port))
}

/// A DNS name or IPv4 literal: dot-separated labels of ASCII letters, digits, `-` and `_`.
fn is_valid_host_name(host: &str) -> bool {
    const HOST_BYTES_MAX: usize = 253;
    !host.is_empty()
        && host.len() <= HOST_BYTES_MAX
        && host.split('.').all(|label| {
            !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(host: &str, port: u16, path_and_query: &str, authority: &str) -> ParsedUrl {
        ParsedUrl {
            host: host.into(),
            port,
            path_and_query: path_and_query.into(),
            authority: authority.into(),
        }
    }

    #[test]
    fn a_bare_host_gets_port_80_and_root_path() {
        assert_eq!(
            parse_url("http://app.example.com"),
            Ok(parsed("app.example.com", 80, "/", "app.example.com"))
        );
        assert_eq!(parse_url("HTTP://app/"), Ok(parsed("app", 80, "/", "app")));
    }

    #[test]
    fn port_path_and_query_are_kept() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/cb/status?x=1&y=2"),
            Ok(parsed("127.0.0.1", 8080, "/cb/status?x=1&y=2", "127.0.0.1:8080"))
        );
        assert_eq!(parse_url("http://app:80/cb"), Ok(parsed("app", 80, "/cb", "app")));
        assert_eq!(parse_url("http://app?x=1"), Ok(parsed("app", 80, "/?x=1", "app")));
    }

    #[test]
    fn ipv6_literals_keep_brackets_in_the_host_header_only() {
        assert_eq!(parse_url("http://[::1]:9000/cb"), Ok(parsed("::1", 9000, "/cb", "[::1]:9000")));
        assert_eq!(parse_url("http://[::1]"), Ok(parsed("::1", 80, "/", "[::1]")));
    }

    #[test]
    fn https_is_refused_with_its_own_message() {
        let error = parse_url("https://app/cb").unwrap_err();
        assert!(error.starts_with("https is not supported: "), "{error}");
    }

    #[test]
    fn malformed_urls_are_refused() {
        for url in [
            "",
            "app/cb",
            "ftp://app/",
            "http://",
            "http:///cb",
            "http://app:/cb",
            "http://app:0/cb",
            "http://app:65536/cb",
            "http://app:8x/cb",
            "http://user:pass@app/cb",
            "http://app/cb#frag",
            "http://app/c b",
            "http://app..x/",
            "http://ap p/",
            "http://[::1/",
            "http://[zz]/",
            "http://[::1]x/",
            "http://a:1:2/",
        ] {
            assert!(parse_url(url).is_err(), "{url:?} was accepted");
        }
    }
}

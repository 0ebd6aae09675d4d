//! Header rules as Gorouter applies them: hop-by-hop headers removed both ways, forwarding
//! and tracing headers added on the way in, the sticky-session cookie on the way out. They
//! edit the header map in place (no copies of the rest).

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_REQUEST_START: HeaderName = HeaderName::from_static("x-request-start");
pub(crate) const X_VCAP_REQUEST_ID: HeaderName = HeaderName::from_static("x-vcap-request-id");
pub(crate) const X_B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub(crate) const X_B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub(crate) const X_CF_ROUTER_ERROR: HeaderName = HeaderName::from_static("x-cf-routererror");
pub(crate) const X_CF_APPLICATION_ID: HeaderName = HeaderName::from_static("x-cf-applicationid");
pub(crate) const X_CF_INSTANCE_ID: HeaderName = HeaderName::from_static("x-cf-instanceid");
pub(crate) const X_CF_INSTANCE_INDEX: HeaderName = HeaderName::from_static("x-cf-instanceindex");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

pub(crate) const STICKY_COOKIE: &str = "__VCAP_ID__";
const SESSION_COOKIE: &str = "JSESSIONID";

/// Whether a request asks to switch protocols (WebSocket): HTTP/1.1 with `Connection: upgrade`.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers: those `Connection` names, `Connection` itself, `Keep-Alive`,
/// `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`. For an upgrade,
/// `Connection: upgrade` and `Upgrade` stay.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> =
            connection_tokens(headers).filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok()).collect();
        for name in named {
            if !(upgrade && name == header::UPGRADE) {
                headers.remove(name);
            }
        }
        headers.remove(header::CONNECTION);
    }
    for name in [KEEP_ALIVE, header::TE, header::TRAILER, header::TRANSFER_ENCODING, PROXY_CONNECTION] {
        headers.remove(name);
    }
    headers.remove(header::PROXY_AUTHENTICATE);
    headers.remove(header::PROXY_AUTHORIZATION);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Adds the forwarding and tracing headers to a request going to an endpoint. Returns the
/// request id (kept when the client sent a valid one).
pub(crate) fn add_forwarding(headers: &mut HeaderMap, client: IpAddr, tls: bool) -> HeaderValue {
    let client = client.to_canonical().to_string();
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(previous) if !previous.trim().is_empty() => format!("{previous}, {client}"),
        _ => client,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(if tls { "https" } else { "http" }));
    }
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    headers.insert(X_REQUEST_START, HeaderValue::from(millis as u64));

    let request_id = match headers.get(&X_VCAP_REQUEST_ID) {
        Some(v) if v.to_str().ok().and_then(|s| uuid::Uuid::parse_str(s).ok()).is_some() => v.clone(),
        _ => {
            let fresh = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a uuid is a header value");
            headers.insert(X_VCAP_REQUEST_ID, fresh.clone());
            fresh
        }
    };

    let existing_b3 =
        headers.get(&X_B3_TRACE_ID).and_then(|v| v.to_str().ok()).filter(|t| is_hex(t, 32)).map(str::to_string);
    let trace_id = existing_b3.clone().unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let span_id = format!("{:016x}", rand::random::<u64>() | 1);
    if !headers.contains_key(&X_B3_TRACE_ID) {
        headers.insert(X_B3_TRACE_ID, HeaderValue::from_str(&trace_id).expect("hex"));
        headers.insert(X_B3_SPAN_ID, HeaderValue::from_str(&span_id).expect("hex"));
    }
    if !headers.contains_key(&TRACEPARENT) {
        let parent = format!("00-{trace_id}-{span_id}-01");
        headers.insert(TRACEPARENT, HeaderValue::from_str(&parent).expect("hex"));
    }
    request_id
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0')
}

/// The `__VCAP_ID__` cookie of a request, if any.
pub(crate) fn sticky_instance(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == STICKY_COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// When the response sets `JSESSIONID`, adds `__VCAP_ID__=<instance id>` with the session
/// cookie's lifetime, path, `Secure` and `SameSite` (Gorouter's sticky sessions).
pub(crate) fn add_sticky_cookie(headers: &mut HeaderMap, instance_id: &str) {
    let session = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.split_once('=').is_some_and(|(name, _)| name.trim() == SESSION_COOKIE))
        .map(str::to_string);
    let Some(session) = session else { return };
    let mut cookie = format!("{STICKY_COOKIE}={instance_id}");
    let mut has_path = false;
    for attribute in session.split(';').skip(1).map(str::trim) {
        let name = attribute.split('=').next().unwrap_or("").to_ascii_lowercase();
        match name.as_str() {
            "max-age" | "expires" | "secure" | "samesite" | "partitioned" => {
                cookie.push_str("; ");
                cookie.push_str(attribute);
            }
            "path" => {
                has_path = true;
                cookie.push_str("; ");
                cookie.push_str(attribute);
            }
            _ => {}
        }
    }
    if !has_path {
        cookie.push_str("; Path=/");
    }
    cookie.push_str("; HttpOnly");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "x"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn forwarding_headers_append_and_keep_valid_ids() {
        let id = "6c3b2a5e-8b8e-4d4e-9f6a-2f8d1c0b9a77";
        let mut h = map(&[("x-forwarded-for", "10.0.0.1"), ("x-vcap-request-id", id)]);
        let got = add_forwarding(&mut h, "127.0.0.1".parse().unwrap(), true);
        assert_eq!(got, id);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(is_hex(h["x-b3-traceid"].to_str().unwrap(), 32));
        let parent = h["traceparent"].to_str().unwrap();
        assert!(parent.starts_with(&format!("00-{}-", h["x-b3-traceid"].to_str().unwrap())), "{parent}");
        let mut h = map(&[("x-vcap-request-id", "not-a-uuid")]);
        let got = add_forwarding(&mut h, "::ffff:127.0.0.1".parse().unwrap(), false);
        assert!(uuid::Uuid::parse_str(got.to_str().unwrap()).is_ok());
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn sticky_cookie_follows_the_session_cookie() {
        let h = map(&[("cookie", "a=b; __VCAP_ID__=inst-2; c=d")]);
        assert_eq!(sticky_instance(&h), Some("inst-2"));
        let mut h = map(&[("set-cookie", "JSESSIONID=abc; Path=/app; Max-Age=60; Secure")]);
        add_sticky_cookie(&mut h, "inst-1");
        let all: Vec<_> = h.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(all[1], "__VCAP_ID__=inst-1; Path=/app; Max-Age=60; Secure; HttpOnly");
        let mut h = map(&[("set-cookie", "other=1")]);
        add_sticky_cookie(&mut h, "inst-1");
        assert_eq!(h.get_all("set-cookie").iter().count(), 1);
    }
}

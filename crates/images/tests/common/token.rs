//! A token server for the registry's `auth: token` mode: it checks HTTP basic credentials and
//! answers with an ES256 JWT carrying the requested repository access and an `x5c` certificate
//! that the registry trusts (generated with `openssl`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const SERVICE: &str = "hearth-registry";
pub const ISSUER: &str = "hearth-test-issuer";

pub struct TokenServer {
    pub realm: String,
    addr: String,
    stop: Arc<AtomicBool>,
    /// Tokens handed out so far.
    pub issued: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    /// Writes `cert.pem` into `dir` (the registry's `rootcertbundle`) and serves tokens to `user`.
    pub fn start(dir: &Path, user: &str, password: &str) -> Self {
        let (key, cert) = (dir.join("token-key.pem"), dir.join("cert.pem"));
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-subj", "/CN=hearth-token", "-days", "2", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl is installed");
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(&key).unwrap()).unwrap();
        let cert_der_b64: String =
            std::fs::read_to_string(&cert).unwrap().lines().filter(|l| !l.starts_with("-----")).collect();
        let expected = format!("Basic {}", base64(&format!("{user}:{password}")));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        let user = user.to_string();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let (mut request_line, mut authorized) = (String::new(), false);
                reader.read_line(&mut request_line).unwrap_or_default();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if lower.starts_with("authorization:") && line[14..].trim() == expected {
                        authorized = true;
                    }
                }
                let response = if authorized {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let token = sign(&key, &cert_der_b64, &user, &scopes(&request_line));
                    let body = format!("{{\"token\":\"{token}\",\"expires_in\":300}}");
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = conn.write_all(response.as_bytes());
            }
        });
        Self { realm: format!("http://{addr}/token"), addr, stop, issued, thread: Some(thread) }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `repository:NAME:ACTIONS` scopes from the query string, as (name, actions).
fn scopes(request_line: &str) -> Vec<(String, Vec<String>)> {
    let query = request_line.split(' ').nth(1).unwrap_or("").split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("scope="))
        .map(percent_decode)
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (_kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some((name.to_string(), actions.split(',').map(String::from).collect()))
        })
        .collect()
}

fn sign(key: &jsonwebtoken::EncodingKey, cert: &str, user: &str, scopes: &[(String, Vec<String>)]) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let access: Vec<_> = scopes
        .iter()
        .map(|(name, actions)| serde_json::json!({"type": "repository", "name": name, "actions": actions}))
        .collect();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", access.len()), "access": access
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![cert.to_string()]);
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

//! Health checks as Diego runs them, from the cell against an instance's address:
//! `port` (a TCP connect succeeds), `http` (`GET endpoint` answers 200) and `process`
//! (the main process is alive, which the caller knows). Each check has a time limit; a
//! failure says why in the words `cf app` shows.

use std::net::SocketAddr;
use std::time::Duration;

use hearth_scheduler::{HealthCheck, HealthCheckType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to check, resolved for one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Port(SocketAddr),
    Http {
        addr: SocketAddr,
        path: String,
    },
    /// Alive is healthy: nothing to probe.
    Process,
}

impl Probe {
    /// The probe for a desired LRP's health check at the instance's address and first port.
    pub fn for_check(check: &HealthCheck, addr: Option<SocketAddr>) -> Probe {
        match (check.kind, addr) {
            (HealthCheckType::Port, Some(addr)) => Probe::Port(addr),
            (HealthCheckType::Http, Some(addr)) => {
                Probe::Http { addr, path: check.endpoint.clone().unwrap_or_else(|| "/".into()) }
            }
            (HealthCheckType::Process, _) | (HealthCheckType::Port | HealthCheckType::Http, None) => Probe::Process,
        }
    }

    /// Runs the probe once within `timeout`. `Err` says why it failed.
    pub async fn check(&self, timeout: Duration) -> Result<(), String> {
        match self {
            Probe::Process => Ok(()),
            Probe::Port(addr) => match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("Failed to make TCP connection to port {}: {e}", addr.port())),
                Err(_) => {
                    Err(format!("Failed to make TCP connection to port {}: timed out after {timeout:?}", addr.port()))
                }
            },
            Probe::Http { addr, path } => match tokio::time::timeout(timeout, http_status(*addr, path)).await {
                Ok(Ok(200)) => Ok(()),
                Ok(Ok(status)) => Err(format!("Failed to get 200 from {path} on port {}: got {status}", addr.port())),
                Ok(Err(e)) => Err(format!("Failed to make HTTP request to {path} on port {}: {e}", addr.port())),
                Err(_) => Err(format!("Failed to make HTTP request to {path} on port {}: timed out", addr.port())),
            },
        }
    }
}

/// `GET path` over a fresh connection; answers the status code.
async fn http_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: hearth-health-check\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status(&head).ok_or_else(|| std::io::Error::other("not an HTTP response"))
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_and_garbage_does_not() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[tokio::test]
    async fn port_and_http_probes_see_a_real_listener_and_its_absence() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthy ");
                let reply: &[u8] = if ok { b"HTTP/1.1 200 OK\r\n\r\n" } else { b"HTTP/1.1 500 Oops\r\n\r\n" };
                let _ = s.write_all(reply).await;
            }
        });
        let t = Duration::from_secs(2);
        assert_eq!(Probe::Port(addr).check(t).await, Ok(()));
        assert_eq!(Probe::Http { addr, path: "/healthy".into() }.check(t).await, Ok(()));
        let sick = Probe::Http { addr, path: "/sick".into() }.check(t).await.unwrap_err();
        assert!(sick.contains("got 500"), "{sick}");
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let refused = Probe::Port(closed).check(t).await.unwrap_err();
        assert!(refused.starts_with("Failed to make TCP connection to port"), "{refused}");
    }

    #[test]
    fn checks_without_an_address_fall_back_to_the_process() {
        let check = HealthCheck::default();
        assert_eq!(Probe::for_check(&check, None), Probe::Process);
        let addr: SocketAddr = "10.0.0.2:8080".parse().unwrap();
        assert_eq!(Probe::for_check(&check, Some(addr)), Probe::Port(addr));
        let http = HealthCheck { kind: HealthCheckType::Http, endpoint: Some("/h".into()), ..HealthCheck::default() };
        assert_eq!(Probe::for_check(&http, Some(addr)), Probe::Http { addr, path: "/h".into() });
    }
}

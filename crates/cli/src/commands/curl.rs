//! `hearth curl`: an authenticated request to any API path, like `cf curl`.

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::Args;
use reqwest::Method;

use crate::session::{Request, Response, Session};

#[derive(Debug, Args)]
pub struct CurlArgs {
    /// The path to request, e.g. /v3/apps (or a full URL)
    pub path: String,
    /// The HTTP method (default: GET, or POST when -d is given)
    #[arg(short = 'X', value_name = "METHOD")]
    pub method: Option<String>,
    /// A request header, e.g. -H 'Content-Type: application/json' (repeatable)
    #[arg(short = 'H', value_name = "HEADER")]
    pub headers: Vec<String>,
    /// The request body; @FILE reads it from a file
    #[arg(short = 'd', value_name = "DATA")]
    pub data: Option<String>,
    /// Print the response status line and headers before the body
    #[arg(short = 'i')]
    pub include: bool,
    /// Exit with an error when the server answers 4xx or 5xx
    #[arg(long)]
    pub fail: bool,
}

pub async fn run(session: &mut Session, args: CurlArgs) -> Result<()> {
    session.require_login()?;
    let body = match &args.data {
        Some(data) => Some(read_data(data)?),
        None => None,
    };
    let method = match &args.method {
        Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("'{m}' is not an HTTP method"))?,
        None if body.is_some() => Method::POST,
        None => Method::GET,
    };
    let mut headers = args.headers.iter().map(|h| parse_header(h)).collect::<Result<Vec<_>>>()?;
    if body.is_some() && !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    let request = Request { method, url: session.url(&args.path)?, headers, body };
    let response = session.send(&request).await?;
    print_response(&response, args.include)?;
    if args.fail && response.status >= 400 {
        bail!("The server answered {} for {}.", response.status, args.path);
    }
    Ok(())
}

/// `-d` data: literal text, or the contents of a file for `@FILE`.
fn read_data(data: &str) -> Result<Vec<u8>> {
    match data.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("cannot read the request body from '{path}'")),
        None => Ok(data.as_bytes().to_vec()),
    }
}

/// Splits `Name: value`.
fn parse_header(header: &str) -> Result<(String, String)> {
    let Some((name, value)) = header.split_once(':') else {
        bail!("'{header}' is not a header; write it as 'Name: value'.");
    };
    let name = name.trim();
    if name.is_empty() {
        bail!("'{header}' has no header name; write it as 'Name: value'.");
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

fn print_response(response: &Response, include: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if include {
        let reason =
            reqwest::StatusCode::from_u16(response.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        writeln!(out, "{:?} {} {reason}", response.version, response.status)?;
        for (name, value) in &response.headers {
            writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()))?;
        }
        writeln!(out)?;
    }
    out.write_all(&response.body)?;
    if !response.body.ends_with(b"\n") && !response.body.is_empty() {
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers() {
        assert_eq!(
            parse_header("Content-Type:  application/json ").unwrap(),
            ("Content-Type".to_owned(), "application/json".to_owned())
        );
        assert!(parse_header("nonsense").is_err());
        assert!(parse_header(": x").is_err());
    }

    #[test]
    fn data_can_come_from_a_file() {
        let path = std::env::temp_dir().join(format!("hearth-curl-{}.json", std::process::id()));
        std::fs::write(&path, b"{\"a\":1}").unwrap();
        assert_eq!(read_data(&format!("@{}", path.display())).unwrap(), b"{\"a\":1}");
        assert_eq!(read_data("{}").unwrap(), b"{}");
        assert!(read_data("@/nonexistent/file").is_err());
        std::fs::remove_file(path).unwrap();
    }
}

//! Discovering a platform from its API URL: the root document (`GET /`) and
//! the login server's info (`GET {login}/login`), as the cf CLI does.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::api_error::ApiError;

/// Where a platform's services are, learned from its root document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub api: String,
    pub api_version: Option<String>,
    pub login_url: String,
    pub uaa_url: String,
}

/// Normalises what a user typed as an API URL: adds `https://` when no scheme
/// is given (as cf does) and drops trailing slashes.
pub fn normalize_api_url(input: &str) -> String {
    let trimmed = input.trim().trim_end_matches('/');
    if trimmed.contains("://") { trimmed.to_owned() } else { format!("https://{trimmed}") }
}

/// Reads `GET /` and `GET {login}/login` to find the API version, login and UAA.
pub async fn discover(client: &reqwest::Client, api: &str) -> Result<Endpoints> {
    let root = get_json(client, &format!("{api}/")).await.map_err(|e| match e.downcast_ref::<ApiError>() {
        Some(_) => e.context(format!("{api} is not a Cloud Foundry API (GET / failed). Check the URL")),
        None => e,
    })?;
    let link = |name: &str| {
        root.pointer(&format!("/links/{name}/href")).and_then(Value::as_str).map(|s| s.trim_end_matches('/').to_owned())
    };
    if link("cloud_controller_v3").is_none() {
        bail!(
            "{api} does not look like a Cloud Foundry API: its root document has no links.cloud_controller_v3. Check the URL."
        );
    }
    let api_version =
        root.pointer("/links/cloud_controller_v3/meta/version").and_then(Value::as_str).map(str::to_owned);
    let Some(login_url) = link("login").or_else(|| link("uaa")) else {
        bail!("{api} does not say where to log in: its root document has no links.login. Check the URL.");
    };
    // The login server says which UAA issues tokens; fall back to the root's link.
    let info = get_json(client, &format!("{login_url}/login")).await.ok();
    let uaa_url = info
        .as_ref()
        .and_then(|i| i.pointer("/links/uaa").and_then(Value::as_str))
        .map(|s| s.trim_end_matches('/').to_owned())
        .or_else(|| link("uaa"))
        .unwrap_or_else(|| login_url.clone());
    Ok(Endpoints { api: api.to_owned(), api_version, login_url, uaa_url })
}

/// The prompts the login server asks for, e.g. ("username", "Email").
pub async fn login_prompts(client: &reqwest::Client, login_url: &str) -> Vec<(String, String)> {
    let Ok(info) = get_json(client, &format!("{login_url}/login")).await else {
        return Vec::new();
    };
    info.get("prompts")
        .and_then(Value::as_object)
        .map(|prompts| {
            prompts
                .iter()
                .filter_map(|(key, value)| {
                    let label = value.get(1).and_then(Value::as_str)?;
                    Some((key.clone(), label.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value> {
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", crate::session::describe_transport_error(&e)))?;
    let status = response.status().as_u16();
    let body = response.text().await.context("the server closed the connection")?;
    if !(200..300).contains(&status) {
        return Err(ApiError::from_body(status, &body).into());
    }
    serde_json::from_str(&body).with_context(|| format!("{url} did not answer with JSON; check that it is the API URL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_api_urls() {
        assert_eq!(normalize_api_url("api.example.com/"), "https://api.example.com");
        assert_eq!(normalize_api_url("http://127.0.0.1:8080//"), "http://127.0.0.1:8080");
        assert_eq!(normalize_api_url(" https://x "), "https://x");
    }
}

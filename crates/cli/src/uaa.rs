//! Talking to UAA: the OAuth token grants (password, client_credentials,
//! refresh_token), `/userinfo`, and the SCIM `/Users` calls `create-user` and
//! `delete-user` make.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::session::{Session, describe_transport_error};

/// The public client the cf CLI (and hearth) log users in with.
pub const CLI_CLIENT_ID: &str = "cf";

/// A successful answer from `POST /oauth/token`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub token_type: Option<String>,
}

/// The grants hearth uses.
#[derive(Debug, Clone, Copy)]
pub enum Grant<'a> {
    Password { username: &'a str, password: &'a str },
    ClientCredentials { client_id: &'a str, client_secret: &'a str },
    RefreshToken { refresh_token: &'a str },
}

/// `POST {uaa}/oauth/token`. Users authenticate through the public `cf`
/// client (HTTP Basic `cf:`); clients through their own id and secret.
pub async fn request_token(client: &reqwest::Client, uaa: &str, grant: Grant<'_>) -> Result<TokenResponse> {
    let url = format!("{uaa}/oauth/token");
    let request = client.post(&url).header(reqwest::header::ACCEPT, "application/json");
    let request = match grant {
        Grant::Password { username, password } => request.basic_auth(CLI_CLIENT_ID, Some("")).form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ]),
        Grant::ClientCredentials { client_id, client_secret } => {
            request.basic_auth(client_id, Some(client_secret)).form(&[("grant_type", "client_credentials")])
        }
        Grant::RefreshToken { refresh_token } => request
            .basic_auth(CLI_CLIENT_ID, Some(""))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]),
    };
    let response = request.send().await.map_err(|e| anyhow::anyhow!("{}", describe_transport_error(&e)))?;
    let status = response.status().as_u16();
    let body = response.text().await.context("the token server closed the connection")?;
    if !(200..300).contains(&status) {
        return Err(ApiError::from_body(status, &body).into());
    }
    serde_json::from_str(&body).context("the token server's answer has no access_token")
}

/// `GET {uaa}/userinfo`: who the token belongs to, with UAA's
/// `previous_logon_time` (milliseconds since the epoch) when it knows it.
pub async fn userinfo(session: &mut Session) -> Result<Value> {
    let uaa = session.uaa_url()?;
    session.get(&format!("{uaa}/userinfo")).await
}

/// Formats UAA's `previous_logon_time` (milliseconds since the epoch) for people.
pub fn format_logon_time(millis: i64) -> Option<String> {
    let nanos = i128::from(millis) * 1_000_000;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    let format = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] UTC [year]"
    );
    at.format(&format).ok()
}

/// What `create_user` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New(String),
    AlreadyExisted,
}

/// `POST {uaa}/Users`: creates a user in the `uaa` origin, returning its id.
pub async fn create_user(session: &mut Session, username: &str, password: &str) -> Result<Created> {
    let uaa = session.uaa_url()?;
    let body = json!({
        "userName": username,
        "password": password,
        "origin": "uaa",
        "name": { "familyName": username, "givenName": username },
        "emails": [{ "value": username, "primary": true }],
    });
    match session.post(&format!("{uaa}/Users"), &body).await {
        Ok(user) => {
            let Some(id) = user.get("id").and_then(Value::as_str) else {
                bail!("UAA created the user but did not say its id");
            };
            Ok(Created::New(id.to_owned()))
        }
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_already_exists) => Ok(Created::AlreadyExisted),
        Err(e) => Err(e),
    }
}

/// Finds the ids of the users called `username` (any origin unless given).
pub async fn find_user_ids(session: &mut Session, username: &str, origin: Option<&str>) -> Result<Vec<String>> {
    let uaa = session.uaa_url()?;
    let quoted = username.replace('\\', "\\\\").replace('"', "\\\"");
    let mut filter = format!("userName eq \"{quoted}\"");
    if let Some(origin) = origin {
        filter.push_str(&format!(" and origin eq \"{origin}\""));
    }
    let url = reqwest::Url::parse_with_params(&format!("{uaa}/Users"), &[("filter", filter.as_str())])
        .context("cannot build the UAA user search URL")?;
    let page = session.get(url.as_str()).await?;
    Ok(page
        .get("resources")
        .and_then(Value::as_array)
        .map(|users| users.iter().filter_map(|u| u.get("id").and_then(Value::as_str).map(str::to_owned)).collect())
        .unwrap_or_default())
}

/// `DELETE {uaa}/Users/{id}`; a user already gone is not an error.
pub async fn delete_user(session: &mut Session, id: &str) -> Result<()> {
    let uaa = session.uaa_url()?;
    match session.request(reqwest::Method::DELETE, &format!("{uaa}/Users/{id}"), None).await {
        Ok(_) => Ok(()),
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_not_found) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_previous_logon_time() {
        assert_eq!(format_logon_time(1_700_000_000_000).as_deref(), Some("Tue Nov 14 22:13:20 UTC 2023"));
    }
}

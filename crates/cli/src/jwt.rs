//! Reading the claims of a UAA access token. The client never verifies the
//! signature (the server does); it only needs to know who it is and when the
//! token expires.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// The UAA claims the client uses.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Claims {
    /// Expiry, seconds since the Unix epoch.
    pub exp: Option<i64>,
    pub user_name: Option<String>,
    pub user_id: Option<String>,
    pub origin: Option<String>,
    pub client_id: Option<String>,
    pub grant_type: Option<String>,
}

impl Claims {
    /// Decodes the payload of a JWT; `None` when it is not a JWT.
    pub fn parse(token: &str) -> Option<Self> {
        let payload = token.split('.').nth(1)?;
        // Some encoders pad; the JWT spec says they must not. Accept both.
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// True when the token expires within `skew_secs` of `now` (seconds since
    /// the epoch). A token without `exp` never expires.
    pub fn is_expired(&self, now: i64, skew_secs: i64) -> bool {
        self.exp.is_some_and(|exp| exp <= now + skew_secs)
    }

    /// The name to show for whoever holds the token: the user name, or the
    /// client id for a client_credentials token.
    pub fn display_name(&self) -> Option<&str> {
        self.user_name.as_deref().or(self.client_id.as_deref())
    }

    /// True for a token that represents a client, not a user.
    pub fn is_client(&self) -> bool {
        self.user_name.is_none() || self.grant_type.as_deref() == Some("client_credentials")
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn reads_exp_and_user() {
        let claims = Claims::parse(&token(
            r#"{"exp":1700000000,"user_name":"admin","origin":"uaa","client_id":"cf","grant_type":"password"}"#,
        ))
        .unwrap();
        assert_eq!(claims.exp, Some(1_700_000_000));
        assert_eq!(claims.display_name(), Some("admin"));
        assert!(!claims.is_client());
        assert!(claims.is_expired(1_700_000_000, 0));
        assert!(claims.is_expired(1_699_999_990, 30));
        assert!(!claims.is_expired(1_699_999_000, 30));
    }

    #[test]
    fn client_token_shows_client_id() {
        let claims = Claims::parse(&token(r#"{"client_id":"admin","grant_type":"client_credentials"}"#)).unwrap();
        assert_eq!(claims.display_name(), Some("admin"));
        assert!(claims.is_client());
        assert!(!claims.is_expired(i64::MAX - 100, 30));
    }

    #[test]
    fn accepts_padded_payload() {
        let padded = format!("h.{}.s", base64::engine::general_purpose::URL_SAFE.encode(r#"{"exp":5}"#));
        assert_eq!(Claims::parse(&padded).unwrap().exp, Some(5));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Claims::parse("not-a-jwt").is_none());
        assert!(Claims::parse("a.!!!.c").is_none());
    }
}

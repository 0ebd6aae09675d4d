//! Turning error responses from the API (CF V3 `errors` documents) and from
//! UAA (`error` / `error_description`) into messages for people.

use serde_json::Value;

/// A non-success answer from the server, with the parts callers branch on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// The CF error code, e.g. 10010.
    pub code: Option<i64>,
    /// The CF error title (`CF-ResourceNotFound`) or the UAA `error` field.
    pub title: Option<String>,
    /// What went wrong, for people.
    pub detail: String,
}

impl ApiError {
    /// Reads an error body; falls back to the status line and raw text.
    pub fn from_body(status: u16, body: &str) -> Self {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        if let Some(first) =
            parsed.as_ref().and_then(|v| v.get("errors")).and_then(Value::as_array).and_then(|errors| errors.first())
        {
            let all = parsed
                .as_ref()
                .and_then(|v| v.get("errors"))
                .and_then(Value::as_array)
                .map(|errors| {
                    errors.iter().filter_map(|e| e.get("detail").and_then(Value::as_str)).collect::<Vec<_>>().join("; ")
                })
                .unwrap_or_default();
            return Self {
                status,
                code: first.get("code").and_then(Value::as_i64),
                title: first.get("title").and_then(Value::as_str).map(str::to_owned),
                detail: if all.is_empty() { status_text(status) } else { all },
            };
        }
        if let Some(error) = parsed.as_ref().and_then(|v| v.get("error")).and_then(Value::as_str) {
            let description = parsed
                .as_ref()
                .and_then(|v| v.get("error_description").or_else(|| v.get("message")))
                .and_then(Value::as_str)
                .unwrap_or(error);
            return Self { status, code: None, title: Some(error.to_owned()), detail: description.to_owned() };
        }
        let text = body.trim();
        let detail = if text.is_empty() || text.len() > 300 {
            status_text(status)
        } else {
            format!("{}: {text}", status_text(status))
        };
        Self { status, code: None, title: None, detail }
    }

    /// True when the server rejected the token itself (expired, revoked,
    /// malformed), so a refreshed token may succeed.
    pub fn is_invalid_token(&self) -> bool {
        self.status == 401
            && (self.code == Some(1000)
                || matches!(
                    self.title.as_deref(),
                    Some("CF-InvalidAuthToken" | "invalid_token" | "CF-NotAuthenticated")
                )
                || self.title.is_none())
    }

    /// True for `CF-ResourceNotFound` and other 404s.
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }

    /// True when the thing being created is already there (a role a user
    /// already has, a user that already exists).
    pub fn is_already_exists(&self) -> bool {
        self.status == 409 || (self.status == 422 && self.detail.to_ascii_lowercase().contains("already"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)?;
        if let Some(title) = &self.title
            && title.starts_with("CF-")
        {
            write!(f, " ({title})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

fn status_text(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("error");
    format!("The server answered {status} {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cf_errors() {
        let err = ApiError::from_body(
            404,
            r#"{"errors":[{"code":10010,"title":"CF-ResourceNotFound","detail":"Organization not found"}]}"#,
        );
        assert_eq!(err.code, Some(10010));
        assert!(err.is_not_found());
        assert_eq!(err.to_string(), "Organization not found (CF-ResourceNotFound)");
    }

    #[test]
    fn reads_uaa_errors() {
        let err = ApiError::from_body(401, r#"{"error":"unauthorized","error_description":"Bad credentials"}"#);
        assert_eq!(err.to_string(), "Bad credentials");
        assert!(!err.is_invalid_token());
        let expired = ApiError::from_body(401, r#"{"error":"invalid_token","error_description":"expired"}"#);
        assert!(expired.is_invalid_token());
    }

    #[test]
    fn cf_invalid_token_is_detected() {
        let err = ApiError::from_body(
            401,
            r#"{"errors":[{"code":1000,"title":"CF-InvalidAuthToken","detail":"Invalid Auth Token"}]}"#,
        );
        assert!(err.is_invalid_token());
    }

    #[test]
    fn plain_text_bodies_are_kept_short() {
        assert_eq!(ApiError::from_body(502, "").to_string(), "The server answered 502 Bad Gateway");
        assert_eq!(ApiError::from_body(500, "boom").to_string(), "The server answered 500 Internal Server Error: boom");
    }

    #[test]
    fn role_already_exists_is_detected() {
        let err = ApiError::from_body(
            422,
            r#"{"errors":[{"code":10008,"title":"CF-UnprocessableEntity","detail":"User 'bob' already has 'space_developer' role in space 's'."}]}"#,
        );
        assert!(err.is_already_exists());
    }
}

//! Issuing and verifying tokens: RS256 JWTs carrying UAA's claims.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use hearth_store::{self as store, Cond, RefreshToken, UaaClient, UaaUser, Value};
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::lockout::LockoutPolicy;
use crate::verified::Lookup;
use crate::{Auth, AuthError, OAuthError, password};

/// The OAuth grant a token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    Password,
    ClientCredentials,
    RefreshToken,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
        }
    }
}

/// The claims of a Hearth (UAA) token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub jti: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorities: Option<Vec<String>>,
    pub scope: Vec<String>,
    pub client_id: String,
    pub cid: String,
    pub azp: String,
    pub grant_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    pub rev_sig: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub zid: String,
    pub aud: Vec<String>,
    /// UAA marks its tokens revocable; `cf logout` revokes only such tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocable: Option<bool>,
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }

    /// Whether this token was issued to a user (as opposed to a client acting for itself).
    pub fn is_user(&self) -> bool {
        self.user_id.is_some()
    }

    /// The guid the Cloud Controller knows this caller by: the user id, or the client id.
    pub fn actor_guid(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.client_id)
    }

    /// The name shown for this caller in audit events and `cf` output.
    pub fn actor_name(&self) -> &str {
        self.user_name.as_deref().unwrap_or(&self.client_id)
    }
}

/// Revokes the refresh token issued with the access token `jti` (as `cf logout` asks).
impl Auth {
    pub async fn revoke(&self, jti: &str) -> Result<(), AuthError> {
        let mut tx = self.store.begin().await?;
        let base = jti.trim_end_matches("-r");
        store::delete::<RefreshToken>(&mut tx, &format!("{base}-r")).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The answer of `POST /oauth/token`.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    pub scope: String,
    pub jti: String,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()).map(str::to_string).collect()
}

/// UAA's audience: the resource ids the scopes name (`cloud_controller.read` →
/// `cloud_controller`), plus the client.
pub fn audience(client_id: &str, scopes: &[String]) -> Vec<String> {
    let mut aud = BTreeSet::new();
    for s in scopes {
        match s.rsplit_once('.') {
            Some((resource, _)) => aud.insert(resource.to_string()),
            None => aud.insert(s.clone()),
        };
    }
    aud.insert(client_id.to_string());
    aud.into_iter().collect()
}

/// A short revocation signature over what, when changed, must invalidate tokens.
fn rev_sig(parts: &[&str]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, parts.join("|").as_bytes());
    digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn user_rev_sig(user: &UaaUser, client_id: &str) -> String {
    rev_sig(&[&user.guid, &user.email, &user.password_changed_at, client_id])
}

/// The scopes to grant: everything allowed when nothing specific was asked for; the asked
/// ones when all are allowed; `invalid_scope` otherwise.
fn grant_scopes(allowed: &BTreeSet<String>, requested: &str) -> Result<Vec<String>, OAuthError> {
    let requested = split_list(requested);
    if requested.is_empty() {
        return Ok(allowed.iter().cloned().collect());
    }
    let missing: Vec<&String> = requested.iter().filter(|s| !allowed.contains(*s)).collect();
    if !missing.is_empty() {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!(
                "Invalid scope: {}. Did you know that you can get default scopes by simply sending no value?",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
            ),
        ));
    }
    let set: BTreeSet<String> = requested.into_iter().collect();
    Ok(set.into_iter().collect())
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Auth {
    /// Authenticates a client by id and secret (an empty secret for public clients).
    pub async fn authenticate_client(&self, client_id: &str, secret: &str) -> Result<UaaClient, OAuthError> {
        let mut conn = self.store.conn().await?;
        let client: Option<UaaClient> = store::get(&mut conn, client_id).await?;
        let Some(client) = client else {
            return Err(OAuthError::bad_credentials());
        };
        let ok = match &client.secret_hash {
            None => secret.is_empty(),
            Some(hash) => password::verify(secret, hash),
        };
        if ok { Ok(client) } else { Err(OAuthError::bad_credentials()) }
    }

    fn check_grant(client: &UaaClient, grant: GrantType) -> Result<(), OAuthError> {
        if split_list(&client.authorized_grant_types).iter().any(|g| g == grant.as_str()) {
            Ok(())
        } else {
            Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                format!("Unauthorized grant type: {}", grant.as_str()),
            ))
        }
    }

    /// The scopes of the user's groups.
    pub async fn user_groups(&self, conn: &mut store::Conn, user_guid: &str) -> Result<BTreeSet<String>, AuthError> {
        let names = store::strings(
            conn,
            "SELECT g.display_name FROM uaa_groups g JOIN uaa_group_members m ON m.group_guid = g.guid \
             WHERE m.member_guid = $1",
            vec![Value::Text(user_guid.into())],
        )
        .await?;
        Ok(names.into_iter().collect())
    }

    /// The `password` grant.
    pub async fn password_grant(
        &self,
        client: &UaaClient,
        username: &str,
        password: &str,
        scope: &str,
    ) -> Result<TokenResponse, OAuthError> {
        Self::check_grant(client, GrantType::Password)?;
        if username.is_empty() || password.is_empty() {
            return Err(OAuthError::unauthorized("Bad credentials"));
        }
        let mut tx = self.store.begin().await?;
        let user: Option<UaaUser> = store::find_one(
            &mut tx,
            &[Cond::Eq("username", Value::Text(username.into())), Cond::Eq("origin", Value::Text("uaa".into()))],
        )
        .await?;
        let Some(mut user) = user else {
            return Err(OAuthError::bad_credentials());
        };
        let now = now_secs();
        let failures: Vec<store::LoginFailure> =
            store::find_all(&mut tx, vec![Cond::Eq("user_guid", Value::Text(user.guid.clone()))]).await?;
        let times: Vec<i64> = failures.iter().filter_map(|f| store::unix_seconds(&f.at)).collect();
        if LockoutPolicy::default().is_locked(&times, now) {
            return Err(OAuthError::unauthorized(
                "Your account has been locked because of too many failed attempts to login.",
            ));
        }
        let ok = user.password_hash.as_deref().is_some_and(|h| password::verify(password, h));
        if !ok {
            store::insert(&mut tx, &store::LoginFailure { user_guid: user.guid.clone(), at: store::now() }).await?;
            tx.commit().await?;
            tracing::info!(user = %user.username, "failed login");
            return Err(OAuthError::bad_credentials());
        }
        if !user.active {
            return Err(OAuthError::unauthorized("Your account has been deactivated."));
        }
        store::execute(
            &mut tx,
            "DELETE FROM uaa_login_failures WHERE user_guid = $1",
            vec![Value::Text(user.guid.clone())],
        )
        .await?;
        user.previous_logon_at = user.last_logon_at.take();
        user.last_logon_at = Some(store::now());
        store::update(&mut tx, &user).await?;
        let mut allowed = self.user_groups(&mut tx, &user.guid).await?;
        let client_scopes: BTreeSet<String> = split_list(&client.scope).into_iter().collect();
        allowed.retain(|s| client_scopes.contains(s));
        let scopes = grant_scopes(&allowed, scope)?;
        let resp = self.issue_user_tokens(&mut tx, client, &user, scopes, GrantType::Password, now).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn issue_user_tokens(
        &self,
        conn: &mut store::Conn,
        client: &UaaClient,
        user: &UaaUser,
        scopes: Vec<String>,
        grant: GrantType,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let access_ttl = client.access_token_validity.unwrap_or(self.config.access_token_validity_secs);
        let refresh_ttl = client.refresh_token_validity.unwrap_or(self.config.refresh_token_validity_secs);
        let jti = store::new_guid().replace('-', "");
        let mut claims = Claims {
            jti: jti.clone(),
            sub: user.guid.clone(),
            authorities: None,
            scope: scopes.clone(),
            client_id: client.client_id.clone(),
            cid: client.client_id.clone(),
            azp: client.client_id.clone(),
            grant_type: grant.as_str().into(),
            user_id: Some(user.guid.clone()),
            origin: Some(user.origin.clone()),
            user_name: Some(user.username.clone()),
            email: Some(user.email.clone()),
            auth_time: Some(now),
            rev_sig: user_rev_sig(user, &client.client_id),
            iat: now,
            exp: now + access_ttl,
            iss: self.config.issuer.clone(),
            zid: "uaa".into(),
            aud: audience(&client.client_id, &scopes),
            revocable: Some(true),
        };
        let access_token = self.sign(&claims).await?;
        let refresh_token = if split_list(&client.authorized_grant_types).iter().any(|g| g == "refresh_token") {
            claims.jti = format!("{jti}-r");
            claims.exp = now + refresh_ttl;
            store::insert(
                conn,
                &RefreshToken {
                    jti: claims.jti.clone(),
                    user_guid: Some(user.guid.clone()),
                    client_id: client.client_id.clone(),
                    scope: scopes.join(" "),
                    expires_at: format!("{}", claims.exp),
                    created_at: store::now(),
                },
            )
            .await?;
            Some(self.sign(&claims).await?)
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: "bearer",
            refresh_token,
            expires_in: access_ttl - 1,
            scope: scopes.join(" "),
            jti,
        })
    }

    /// The `client_credentials` grant: a token for the client itself, with its authorities.
    pub async fn client_credentials_grant(&self, client: &UaaClient, scope: &str) -> Result<TokenResponse, OAuthError> {
        Self::check_grant(client, GrantType::ClientCredentials)?;
        let allowed: BTreeSet<String> = split_list(&client.authorities).into_iter().collect();
        let scopes = grant_scopes(&allowed, scope)?;
        let now = now_secs();
        let ttl = client.access_token_validity.unwrap_or(self.config.access_token_validity_secs);
        let jti = store::new_guid().replace('-', "");
        let claims = Claims {
            jti: jti.clone(),
            sub: client.client_id.clone(),
            authorities: Some(scopes.clone()),
            scope: scopes.clone(),
            client_id: client.client_id.clone(),
            cid: client.client_id.clone(),
            azp: client.client_id.clone(),
            grant_type: GrantType::ClientCredentials.as_str().into(),
            user_id: None,
            origin: None,
            user_name: None,
            email: None,
            auth_time: None,
            rev_sig: rev_sig(&[&client.client_id, client.secret_hash.as_deref().unwrap_or("")]),
            iat: now,
            exp: now + ttl,
            iss: self.config.issuer.clone(),
            zid: "uaa".into(),
            aud: audience(&client.client_id, &scopes),
            revocable: None,
        };
        Ok(TokenResponse {
            access_token: self.sign(&claims).await?,
            token_type: "bearer",
            refresh_token: None,
            expires_in: ttl - 1,
            scope: scopes.join(" "),
            jti,
        })
    }

    /// The `refresh_token` grant: a new access token (and refresh token) for the same user,
    /// unless the refresh token was revoked, expired, or the user changed password.
    pub async fn refresh_grant(
        &self,
        client: &UaaClient,
        token: &str,
        scope: &str,
    ) -> Result<TokenResponse, OAuthError> {
        Self::check_grant(client, GrantType::RefreshToken)?;
        let (claims, _) = self.decode(token).await.map_err(|_| OAuthError::invalid_token("Invalid refresh token."))?;
        if !claims.jti.ends_with("-r") {
            return Err(OAuthError::invalid_token("Invalid refresh token."));
        }
        if claims.cid != client.client_id {
            return Err(OAuthError::invalid_token("Invalid refresh token (client mismatch)."));
        }
        let mut tx = self.store.begin().await?;
        let stored: Option<RefreshToken> = store::get(&mut tx, &claims.jti).await?;
        let Some(stored) = stored else {
            return Err(OAuthError::invalid_token("Invalid refresh token (revoked)."));
        };
        let user_guid = stored.user_guid.clone().unwrap_or_default();
        let user: Option<UaaUser> = store::get(&mut tx, &user_guid).await?;
        let Some(user) = user.filter(|u| u.active) else {
            return Err(OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", "User not found or inactive."));
        };
        if user_rev_sig(&user, &client.client_id) != claims.rev_sig {
            store::delete::<RefreshToken>(&mut tx, &claims.jti).await?;
            tx.commit().await?;
            return Err(OAuthError::invalid_token("Invalid refresh token (revoked)."));
        }
        let mut allowed = self.user_groups(&mut tx, &user.guid).await?;
        let original: BTreeSet<String> = split_list(&stored.scope).into_iter().collect();
        allowed.retain(|s| original.contains(s));
        let scopes = grant_scopes(&allowed, scope)?;
        store::delete::<RefreshToken>(&mut tx, &claims.jti).await?;
        let resp = self.issue_user_tokens(&mut tx, client, &user, scopes, GrantType::RefreshToken, now_secs()).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        let keys = self.keys.read().await;
        let key = keys.primary();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        header.jku = Some(self.config.issuer.replace("/oauth/token", "/token_keys"));
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }

    /// Checks a token's signature (by `kid`) and expiry and answers its claims and the `kid`.
    async fn decode(&self, token: &str) -> Result<(Claims, String), AuthError> {
        let header = jsonwebtoken::decode_header(token)?;
        let kid = header.kid.unwrap_or_default();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat"]);
        {
            let keys = self.keys.read().await;
            if let Some(key) = keys.keys.get(&kid) {
                return Ok((jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)?.claims, kid));
            }
        }
        self.reload_keys().await?;
        let keys = self.keys.read().await;
        let key = keys.keys.get(&kid).ok_or_else(|| AuthError::Key(format!("unknown signing key '{kid}'")))?;
        Ok((jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)?.claims, kid))
    }

    /// Verifies any token Hearth issued (access or refresh) and answers its claims.
    pub async fn verify_any_token(&self, token: &str) -> Result<Claims, TokenRejection> {
        let (claims, _) = self.decode(token).await.map_err(|_| TokenRejection::Invalid)?;
        if claims.iss != self.config.issuer {
            return Err(TokenRejection::Invalid);
        }
        Ok(claims)
    }

    /// Verifies an access token (signature, expiry, issuer) and answers its claims. A token
    /// that verified before is answered from memory while it is unexpired and its key remains.
    pub async fn verify_access_token(&self, token: &str) -> Result<Claims, TokenRejection> {
        let now = now_secs();
        let known = {
            let keys = self.keys.read().await;
            self.verified.lookup(token, now, |kid| keys.keys.contains_key(kid))
        };
        match known {
            Lookup::Valid(claims) => return Ok(*claims),
            Lookup::Expired => return Err(TokenRejection::Expired),
            Lookup::Unknown => {}
        }
        let (claims, kid) = self.decode(token).await.map_err(|e| match e {
            AuthError::Token(t) if matches!(t.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                TokenRejection::Expired
            }
            _ => TokenRejection::Invalid,
        })?;
        if claims.jti.ends_with("-r") || claims.iss != self.config.issuer {
            return Err(TokenRejection::Invalid);
        }
        self.verified.remember(token, &kid, &claims, now);
        Ok(claims)
    }
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    Invalid,
    Expired,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_is_the_scopes_resources_and_the_client() {
        let aud = audience("cf", &["cloud_controller.read".into(), "openid".into(), "scim.read".into()]);
        assert_eq!(aud, vec!["cf", "cloud_controller", "openid", "scim"]);
    }

    #[test]
    fn empty_scope_request_grants_everything_allowed() {
        let allowed: BTreeSet<String> = ["a.read", "b.write"].iter().map(|s| s.to_string()).collect();
        assert_eq!(grant_scopes(&allowed, "").unwrap(), vec!["a.read", "b.write"]);
        assert_eq!(grant_scopes(&allowed, "b.write").unwrap(), vec!["b.write"]);
        let err = grant_scopes(&allowed, "a.read c.admin").unwrap_err();
        assert_eq!(err.error, "invalid_scope");
        assert!(err.description.contains("c.admin"));
    }
}

//! Hearth's UAA-compatible auth server: users, clients, groups (scopes), RS256 tokens
//! with UAA's claims, rotating signing keys, SCIM, and account lockout.
//!
//! Invariants:
//! - Wire compatibility with UAA lives in `http`; the rest speaks in domain terms.
//! - Secrets (passwords, client secrets, private keys) never reach logs or responses;
//!   only argon2 hashes are stored for passwords and client secrets.
//! - Token verification needs no database round trip: public keys are cached in memory
//!   and reloaded when an unknown `kid` appears; an access token that verified is
//!   remembered (`verified`, bounded) until it expires or its key is removed.

pub mod bootstrap;
mod error;
pub mod http;
pub mod keys;
pub mod lockout;
pub mod password;
pub mod scim_filter;
pub mod tokens;
pub mod verified;

use std::sync::Arc;

use hearth_store::Store;
use tokio::sync::RwLock;

pub use error::{AuthError, OAuthError};
pub use tokens::{Claims, GrantType};

/// Token lifetimes and the issuer, as UAA configures them.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// The `iss` claim: `{uaa url}/oauth/token`.
    pub issuer: String,
    /// Default access-token lifetime (UAA: 12 h).
    pub access_token_validity_secs: i64,
    /// Default refresh-token lifetime (UAA: 30 d).
    pub refresh_token_validity_secs: i64,
}

impl AuthConfig {
    pub fn new(uaa_url: &str) -> AuthConfig {
        AuthConfig {
            issuer: format!("{}/oauth/token", uaa_url.trim_end_matches('/')),
            access_token_validity_secs: 12 * 3600,
            refresh_token_validity_secs: 30 * 24 * 3600,
        }
    }
}

/// The auth service: cheap to clone, shared by the HTTP handlers and the API.
#[derive(Clone)]
pub struct Auth {
    pub(crate) store: Store,
    pub(crate) keys: Arc<RwLock<keys::KeyRing>>,
    pub(crate) config: Arc<AuthConfig>,
    pub(crate) verified: Arc<verified::Verified>,
}

impl Auth {
    /// Loads the signing keys (creating the first one if there is none).
    pub async fn new(store: Store, config: AuthConfig) -> Result<Auth, AuthError> {
        let ring = keys::KeyRing::load_or_create(&store).await?;
        Ok(Auth {
            store,
            keys: Arc::new(RwLock::new(ring)),
            config: Arc::new(config),
            verified: Arc::new(verified::Verified::new(verified::CAPACITY)),
        })
    }
}

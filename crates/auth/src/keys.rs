//! Token signing keys: RSA 2048, PKCS#8, kept in the store. One key is primary and
//! signs new tokens; every stored key verifies, so a key can rotate without logging
//! anyone out (add a new primary, drop the old one once its tokens have expired).

use std::collections::BTreeMap;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hearth_store::{self as store, SigningKey, Store};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{Value, json};

use crate::AuthError;

/// One key: its id, what signs with it and what verifies with it.
pub struct Key {
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// The JWK (with UAA's extra `value` field holding the public key PEM).
    pub jwk: Value,
}

/// Every active key, and which one signs.
pub struct KeyRing {
    pub primary: String,
    pub keys: BTreeMap<String, Key>,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_body(pem: &str) -> Result<Vec<u8>, AuthError> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).map_err(|e| AuthError::Key(e.to_string()))
}

/// Generates a new RSA 2048 key as PKCS#8 PEM.
pub fn generate_private_pem() -> Result<String, AuthError> {
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|e| AuthError::Key(e.to_string()))?;
    let der = pair.as_der().map_err(|e| AuthError::Key(e.to_string()))?;
    Ok(pem("PRIVATE KEY", der.as_ref()))
}

impl Key {
    pub fn from_stored(stored: &SigningKey) -> Result<Key, AuthError> {
        let der = pem_body(&stored.private_pem)?;
        let pair = KeyPair::from_pkcs8(&der).map_err(|e| AuthError::Key(e.to_string()))?;
        let public = pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let spki = public.as_der().map_err(|e| AuthError::Key(e.to_string()))?;
        let encoding = EncodingKey::from_rsa_pem(stored.private_pem.as_bytes())?;
        let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
        let jwk = json!({
            "kty": "RSA",
            "e": URL_SAFE_NO_PAD.encode(&e),
            "use": "sig",
            "kid": stored.kid,
            "alg": "RS256",
            "value": pem("PUBLIC KEY", spki.as_ref()).trim_end(),
            "n": URL_SAFE_NO_PAD.encode(&n),
        });
        Ok(Key { kid: stored.kid.clone(), encoding, decoding, jwk })
    }
}

impl KeyRing {
    /// Loads every stored key; creates and stores a first primary key if there is none.
    pub async fn load_or_create(store: &Store) -> Result<KeyRing, AuthError> {
        let mut tx = store.begin().await?;
        let mut stored: Vec<SigningKey> = store::find_all(&mut tx, vec![]).await?;
        if stored.is_empty() {
            let key = SigningKey {
                kid: format!("key-{}", &store::new_guid()[..8]),
                private_pem: generate_private_pem()?,
                is_primary: true,
                created_at: store::now(),
            };
            store::insert(&mut tx, &key).await?;
            stored.push(key);
        }
        tx.commit().await?;
        KeyRing::from_stored(&stored)
    }

    pub fn from_stored(stored: &[SigningKey]) -> Result<KeyRing, AuthError> {
        let mut keys = BTreeMap::new();
        let mut primary = None;
        for s in stored {
            if s.is_primary {
                primary = Some(s.kid.clone());
            }
            keys.insert(s.kid.clone(), Key::from_stored(s)?);
        }
        let primary = primary
            .or_else(|| stored.iter().max_by(|a, b| a.created_at.cmp(&b.created_at)).map(|s| s.kid.clone()))
            .ok_or_else(|| AuthError::Key("no signing key".into()))?;
        Ok(KeyRing { primary, keys })
    }

    pub fn primary(&self) -> &Key {
        &self.keys[&self.primary]
    }

    /// `GET /token_keys`: every key.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.values().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }
}

impl crate::Auth {
    /// Adds a new primary signing key; older keys keep verifying until removed.
    pub async fn rotate_key(&self) -> Result<String, AuthError> {
        let mut tx = self.store.begin().await?;
        store::execute(&mut tx, "UPDATE uaa_signing_keys SET is_primary = 0", vec![]).await?;
        let key = SigningKey {
            kid: format!("key-{}", &store::new_guid()[..8]),
            private_pem: generate_private_pem()?,
            is_primary: true,
            created_at: store::now(),
        };
        store::insert(&mut tx, &key).await?;
        tx.commit().await?;
        self.reload_keys().await?;
        Ok(key.kid)
    }

    /// Removes a (non-primary) key: tokens it signed stop verifying.
    pub async fn remove_key(&self, kid: &str) -> Result<bool, AuthError> {
        let mut tx = self.store.begin().await?;
        let n = store::execute(
            &mut tx,
            "DELETE FROM uaa_signing_keys WHERE kid = $1 AND is_primary = 0",
            vec![store::Value::Text(kid.into())],
        )
        .await?;
        tx.commit().await?;
        self.reload_keys().await?;
        Ok(n > 0)
    }

    /// Re-reads the keys from the store (another process may have rotated them).
    pub async fn reload_keys(&self) -> Result<(), AuthError> {
        let mut conn = self.store.conn().await?;
        let stored: Vec<SigningKey> = store::find_all(&mut conn, vec![]).await?;
        let ring = KeyRing::from_stored(&stored)?;
        *self.keys.write().await = ring;
        Ok(())
    }

    pub async fn jwks(&self) -> Value {
        self.keys.read().await.jwks()
    }

    pub async fn primary_jwk(&self) -> Value {
        self.keys.read().await.primary().jwk.clone()
    }
}

//! A small, bounded memory of access tokens whose signature already verified, so a client
//! that sends the same token on every request pays for one RSA verification, not one per
//! request. Keyed by the token's SHA-256 (the token itself is not kept).
//!
//! Invariants:
//! - Only tokens that passed full verification (signature, expiry, issuer) are remembered.
//! - A remembered token is answered only while it has not expired (`exp >= now`, as the
//!   JWT check itself) and while the key that signed it is still in the key ring: a
//!   removed key stops its tokens here exactly as it does without the memory.
//! - At most `capacity` tokens: when full, expired entries go first, then everything.
//!   A miss only costs the full verification again.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::digest;

use crate::tokens::Claims;

/// How many verified tokens are remembered (a token is ~1 KB of claims).
pub const CAPACITY: usize = 4096;

type Digest = [u8; 32];

struct Entry {
    claims: Claims,
    /// The `kid` of the key that signed the token.
    kid: String,
}

/// Verified access tokens, by the SHA-256 of the token.
pub struct Verified {
    capacity: usize,
    entries: Mutex<HashMap<Digest, Entry>>,
}

/// What the memory knows of a token.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// Verified before, still valid: its claims.
    Valid(Box<Claims>),
    /// Verified before, and expired since.
    Expired,
    /// Not remembered (or its key is gone): verify it in full.
    Unknown,
}

fn digest_of(token: &str) -> Digest {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Verified {
    pub fn new(capacity: usize) -> Verified {
        Verified { capacity, entries: Mutex::new(HashMap::new()) }
    }

    /// Looks `token` up at unix time `now`; `has_key` says whether a `kid` still verifies.
    pub fn lookup(&self, token: &str, now: i64, has_key: impl Fn(&str) -> bool) -> Lookup {
        let digest = digest_of(token);
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(entry) = entries.get(&digest) else { return Lookup::Unknown };
        if !has_key(&entry.kid) {
            entries.remove(&digest);
            return Lookup::Unknown;
        }
        if entry.claims.exp < now {
            entries.remove(&digest);
            return Lookup::Expired;
        }
        Lookup::Valid(Box::new(entry.claims.clone()))
    }

    /// Remembers a token that passed full verification, signed by `kid`.
    pub fn remember(&self, token: &str, kid: &str, claims: &Claims, now: i64) {
        let digest = digest_of(token);
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&digest) {
            entries.retain(|_, e| e.claims.exp >= now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(digest, Entry { claims: claims.clone(), kid: kid.to_string() });
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, exp: i64) -> Claims {
        serde_json::from_value(serde_json::json!({
            "jti": jti, "sub": "u", "scope": ["openid"], "client_id": "cf", "cid": "cf", "azp": "cf",
            "grant_type": "password", "rev_sig": "r", "iat": exp - 100, "exp": exp,
            "iss": "http://x/oauth/token", "zid": "uaa", "aud": ["cf"],
        }))
        .unwrap()
    }

    #[test]
    fn a_remembered_token_is_valid_until_it_expires() {
        let v = Verified::new(8);
        assert_eq!(v.lookup("t1", 1000, |_| true), Lookup::Unknown);
        v.remember("t1", "k1", &claims("a", 1000), 900);
        assert_eq!(v.lookup("t1", 1000, |_| true), Lookup::Valid(Box::new(claims("a", 1000))));
        assert_eq!(v.lookup("t2", 1000, |_| true), Lookup::Unknown);
        assert_eq!(v.lookup("t1", 1001, |_| true), Lookup::Expired);
        // An expired token is forgotten: the next look-up verifies it in full again.
        assert_eq!(v.lookup("t1", 1001, |_| true), Lookup::Unknown);
        assert!(v.is_empty());
    }

    #[test]
    fn a_token_whose_key_was_removed_is_not_answered() {
        let v = Verified::new(8);
        v.remember("t1", "k1", &claims("a", 1000), 900);
        assert_eq!(v.lookup("t1", 950, |kid| kid == "k2"), Lookup::Unknown);
        assert_eq!(v.len(), 0);
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let v = Verified::new(3);
        v.remember("old", "k", &claims("o", 100), 50);
        v.remember("t1", "k", &claims("a", 1000), 50);
        v.remember("t2", "k", &claims("b", 1000), 50);
        // Full: the expired token goes first.
        v.remember("t3", "k", &claims("c", 1000), 500);
        assert_eq!(v.len(), 3);
        assert_eq!(v.lookup("old", 500, |_| true), Lookup::Unknown);
        // Full of valid tokens: it starts over rather than grow.
        v.remember("t4", "k", &claims("d", 1000), 500);
        assert_eq!(v.len(), 1);
        assert_eq!(v.lookup("t4", 500, |_| true), Lookup::Valid(Box::new(claims("d", 1000))));
        assert_eq!(v.lookup("t1", 500, |_| true), Lookup::Unknown);
    }
}

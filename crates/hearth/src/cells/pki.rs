//! The cells' trust: a private certificate authority kept in the server's data directory
//! signs the server's cell-endpoint certificate and one client certificate per cell. A
//! cell joins with a token that names the CA (its SHA-256), so it trusts only this server
//! from its first request on; afterwards every request is mutual TLS and a cell is known by
//! its certificate's fingerprint.
//!
//! Files under `DATA_DIR/cells/` (owner-only): `ca-key.pem`, `ca.pem`, `join-token`,
//! `members.json` (certificate fingerprint → cell id).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use crate::server::write_private;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The name the server's cell certificate is issued for; cells check it (not the address
/// they dialled, which may be any of the server's).
pub const SERVER_NAME: &str = "hearth-cells";

/// What a join token starts with.
const TOKEN_PREFIX: &str = "HCT1";

/// The CA, the join token and the cells that joined.
pub struct Authority {
    dir: PathBuf,
    ca_key: KeyPair,
    ca_params: CertificateParams,
    ca_pem: String,
    ca_der: Vec<u8>,
    secret: String,
    members: Mutex<BTreeMap<String, String>>,
}

/// A cell's certificate and key (PEM), as the join answers them.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Hearth cell CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    params
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The DER of the first certificate in `pem`.
pub fn pem_to_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    pem_block_der(pem, "CERTIFICATE")
}

/// The DER of the first PEM block labelled `label` (`CERTIFICATE`, `PRIVATE KEY`).
pub fn pem_block_der(pem: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let body: String =
        pem.lines().skip_while(|l| *l != begin).skip(1).take_while(|l| !l.starts_with("-----END")).collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(body.trim()).with_context(|| format!("not a PEM {label}"))
}

impl Authority {
    /// Opens the CA under `dir`, creating it, the join token and the member list at first.
    pub fn open(dir: &Path) -> anyhow::Result<Authority> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let key_path = dir.join("ca-key.pem");
        let (ca_key, ca_pem) = match std::fs::read_to_string(&key_path) {
            Ok(key_pem) => {
                let key = KeyPair::from_pem(&key_pem).context("the cell CA key is corrupt")?;
                let pem = std::fs::read_to_string(dir.join("ca.pem")).context("the cell CA certificate is missing")?;
                (key, pem)
            }
            Err(_) => {
                let key = KeyPair::generate().context("cannot make the cell CA key")?;
                let cert = ca_params().self_signed(&key).context("cannot make the cell CA")?;
                write_private(&key_path, &key.serialize_pem())?;
                write_private(&dir.join("ca.pem"), &cert.pem())?;
                (key, cert.pem())
            }
        };
        let token_path = dir.join("join-token");
        let kept = std::fs::read_to_string(&token_path).map(|s| s.trim().to_string());
        let secret = match &kept {
            // The whole token, or (data directories from before) the secret alone.
            Ok(text) => parse_token(text).map(|(_, secret)| secret).unwrap_or_else(|_| text.clone()),
            Err(_) => {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
            }
        };
        // The file holds the whole token a cell joins with, as `--token`'s help says.
        let ca_der = pem_to_der(&ca_pem)?;
        let token = format!("{TOKEN_PREFIX}.{}.{secret}", sha256_hex(&ca_der));
        if kept.as_deref().ok() != Some(token.as_str()) {
            write_private(&token_path, &token)?;
        }
        let members = match std::fs::read_to_string(dir.join("members.json")) {
            Ok(text) => serde_json::from_str(&text).context("cells/members.json is corrupt")?,
            Err(_) => BTreeMap::new(),
        };
        Ok(Authority {
            dir: dir.to_path_buf(),
            ca_key,
            ca_params: ca_params(),
            ca_pem,
            ca_der,
            secret,
            members: Mutex::new(members),
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The token a cell joins with: the CA's fingerprint and the secret.
    pub fn join_token(&self) -> String {
        format!("{TOKEN_PREFIX}.{}.{}", sha256_hex(&self.ca_der), self.secret)
    }

    /// Whether `secret` is this server's join secret (constant time).
    pub fn secret_matches(&self, secret: &str) -> bool {
        let (a, b) = (self.secret.as_bytes(), secret.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.ca_params, &self.ca_key)
    }

    /// A fresh certificate for the server's cell endpoint (`SERVER_NAME`), and its key.
    pub fn server_identity(&self) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()])?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        let cert = params.signed_by(&key, &self.issuer())?;
        Ok((cert.der().to_vec(), key.serialize_der()))
    }

    /// Issues a client certificate for cell `cell_id` and records it as a member (a cell
    /// that joins again gets a new one; the old one stops working).
    pub fn issue(&self, cell_id: &str) -> anyhow::Result<Issued> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cell_id);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        let cert = params.signed_by(&key, &self.issuer())?;
        let fingerprint = sha256_hex(cert.der());
        let mut members = self.members.lock().expect("not poisoned");
        members.retain(|_, id| id != cell_id);
        members.insert(fingerprint, cell_id.to_string());
        write_private(&self.dir.join("members.json"), &serde_json::to_string_pretty(&*members)?)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), ca_pem: self.ca_pem.clone() })
    }

    /// The cell a client certificate (DER) belongs to.
    pub fn member(&self, cert_der: &[u8]) -> Option<String> {
        self.members.lock().expect("not poisoned").get(&sha256_hex(cert_der)).cloned()
    }
}

/// A join token's parts: the CA fingerprint and the secret.
pub fn parse_token(token: &str) -> anyhow::Result<(String, String)> {
    let mut parts = token.trim().splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(TOKEN_PREFIX), Some(ca), Some(secret))
            if ca.len() == 64 && ca.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty() =>
        {
            Ok((ca.to_ascii_lowercase(), secret.to_string()))
        }
        _ => anyhow::bail!(
            "that is not a cell join token (it looks like {TOKEN_PREFIX}.<64 hex>.<secret>; the server prints it \
             at start and keeps it in DATA_DIR/cells/join-token)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_the_ca_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::open(dir.path()).unwrap();
        let (fingerprint, secret) = parse_token(&ca.join_token()).unwrap();
        assert_eq!(fingerprint, sha256_hex(&pem_to_der(ca.ca_pem()).unwrap()));
        assert!(ca.secret_matches(&secret));
        assert!(!ca.secret_matches("nope"));
        assert!(parse_token("HCT1.abc.def").is_err());
        // The same CA after a restart; a cell that joins twice keeps only its newest cert.
        let again = Authority::open(dir.path()).unwrap();
        assert_eq!(again.join_token(), ca.join_token());
        let kept = || std::fs::read_to_string(dir.path().join("join-token")).unwrap();
        assert_eq!(kept(), ca.join_token(), "the file holds the token a cell joins with");
        // A data directory from before kept the secret alone: the secret stays, the file
        // gets the whole token.
        std::fs::write(dir.path().join("join-token"), format!("{secret}\n")).unwrap();
        assert_eq!(Authority::open(dir.path()).unwrap().join_token(), ca.join_token());
        assert_eq!(kept(), ca.join_token());
        let first = again.issue("cell-a").unwrap();
        let second = again.issue("cell-a").unwrap();
        assert_eq!(again.member(&pem_to_der(&second.cert_pem).unwrap()).as_deref(), Some("cell-a"));
        assert_eq!(again.member(&pem_to_der(&first.cert_pem).unwrap()), None);
    }
}

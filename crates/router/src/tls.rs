//! TLS termination: one rustls server config whose certificate is picked by SNI (exact
//! name, then wildcard, then the first certificate), offering HTTP/2 and HTTP/1.1 by ALPN.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::CertConfig;
use crate::error::RouterError;

#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else { return Some(self.default.clone()) };
        let name = name.to_ascii_lowercase();
        let wildcard = name.split_once('.').map(|(_, parent)| format!("*.{parent}"));
        self.by_name
            .get(&name)
            .or_else(|| wildcard.and_then(|w| self.by_name.get(&w)))
            .cloned()
            .or_else(|| Some(self.default.clone()))
    }
}

/// Builds the server config; a certificate or key that does not parse or match is an error.
/// A certificate with no names serves only as the default (when it comes first).
pub(crate) fn server_config(certs: &[CertConfig]) -> Result<Arc<rustls::ServerConfig>, RouterError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut by_name = HashMap::new();
    let mut default = None;
    for cert in certs {
        let bad = |reason: String| RouterError::Certificate { names: cert.names.clone(), reason };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("certificate PEM: {e}")))?;
        if chain.is_empty() {
            return Err(bad("no certificate in the PEM".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).map_err(|e| bad(format!("key PEM: {e}")))?;
        let key = provider.key_provider.load_private_key(key).map_err(|e| bad(format!("key: {e}")))?;
        let certified = CertifiedKey::new(chain, key);
        certified.keys_match().map_err(|e| bad(format!("the key does not match the certificate: {e}")))?;
        let certified = Arc::new(certified);
        for name in &cert.names {
            by_name.insert(name.to_ascii_lowercase(), certified.clone());
        }
        default.get_or_insert(certified);
    }
    let default = default.ok_or_else(|| RouterError::Config("TLS needs at least one certificate".into()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RouterError::Config(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { by_name, default }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

//! Registry clients, one per set of credentials.
//!
//! oci-client keeps the first credentials a `Client` is handed for a registry, and the tokens
//! they earn, for the client's whole life. The server pulls every tenant's images through one
//! `Puller`, so one shared client would lend one tenant's credentials (or cached token) to
//! another tenant's pull, and a refused pull would spoil a later one that has the right
//! credentials. Here each set of credentials gets its own client; past [`CLIENTS_MAX`] the
//! least recently used goes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};

use crate::Credentials;

/// Registry clients kept at most.
const CLIENTS_MAX: usize = 64;

pub(crate) struct Clients {
    /// Each client with when it was last handed out.
    map: Mutex<HashMap<Credentials, (Client, u64)>>,
    ticks: AtomicU64,
    /// Registries (`host:port`) spoken to over plain HTTP.
    insecure_registries: Vec<String>,
}

impl Clients {
    pub(crate) fn new(insecure_registries: Vec<String>) -> Self {
        Self { map: Mutex::default(), ticks: AtomicU64::new(0), insecure_registries }
    }

    /// The client for `credentials` (a clone: it shares the original's connections, stored
    /// credentials and tokens).
    pub(crate) fn get(&self, credentials: &Credentials) -> Client {
        let lock = || self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let tick = self.ticks.fetch_add(1, Ordering::Relaxed);
        if let Some((client, used)) = lock().get_mut(credentials) {
            *used = tick;
            return client.clone();
        }
        // Built outside the lock: reading the system's root certificates takes milliseconds.
        let built = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(self.insecure_registries.clone()),
            // Platform choice is the puller's; the client must not pick silently.
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        });
        let mut map = lock();
        if map.len() >= CLIENTS_MAX && !map.contains_key(credentials) {
            let oldest = map.iter().min_by_key(|(_, (_, used))| *used).map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        let (client, used) = map.entry(credentials.clone()).or_insert((built, tick));
        *used = tick;
        client.clone()
    }

    #[cfg(test)]
    fn holds(&self, credentials: &Credentials) -> bool {
        self.map.lock().unwrap().contains_key(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(n: usize) -> Credentials {
        Credentials::Basic { username: format!("user{n}"), password: format!("secret{n}") }
    }

    #[test]
    fn each_set_of_credentials_has_its_own_client_and_the_least_recently_used_goes_first() {
        let clients = Clients::new(Vec::new());
        let anonymous = Credentials::Anonymous;
        clients.get(&anonymous);
        for n in 0..CLIENTS_MAX - 1 {
            clients.get(&basic(n));
        }
        // Full. Anonymous is used again, so user0 is now the least recently used.
        clients.get(&anonymous);
        clients.get(&basic(CLIENTS_MAX));
        assert!(clients.holds(&anonymous) && clients.holds(&basic(1)) && clients.holds(&basic(CLIENTS_MAX)));
        assert!(!clients.holds(&basic(0)), "the least recently used went");
        assert_eq!(clients.map.lock().unwrap().len(), CLIENTS_MAX);
        // The same username with another password is other credentials.
        clients.get(&basic(1));
        let other = Credentials::Basic { username: "user1".into(), password: "guess".into() };
        clients.get(&other);
        assert!(clients.holds(&other) && clients.holds(&basic(1)));
    }
}

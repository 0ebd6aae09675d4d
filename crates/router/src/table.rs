//! The route table: host (lowercased, port stripped) plus an optional path prefix → a pool
//! of endpoints. Readers take a snapshot with one atomic load (arc-swap) and never lock;
//! writers build a new table beside the old one and swap it in. An endpoint that leaves the
//! table stays alive for the requests already holding it, so they finish.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::error::RouterError;

/// A route: a host name and a path prefix (`""` for the whole host), both checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteKey {
    host: String,
    path: String,
}

impl RouteKey {
    /// `host` is lowercased; `*.example.com` is a wildcard for one or more labels.
    /// `path` is `""` or starts with `/` (a trailing `/` is dropped).
    pub fn new(host: &str, path: &str) -> Result<RouteKey, RouterError> {
        let host = host.to_ascii_lowercase();
        let bad = |reason| Err(RouterError::InvalidHost { host: host.clone(), reason });
        if host.is_empty() || host.len() > 253 {
            return bad("must be 1 to 253 characters");
        }
        let labels = host.strip_prefix("*.").unwrap_or(&host);
        if !labels.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) {
            return bad("must be dot-separated labels of letters, digits and '-' (optionally starting with '*.')");
        }
        let ok_path = path.is_empty()
            || (path.starts_with('/') && !path.bytes().any(|b| b == b'?' || b == b'#' || b.is_ascii_whitespace()));
        if !ok_path {
            return Err(RouterError::InvalidPath { path: path.to_string() });
        }
        Ok(RouteKey { host, path: path.trim_end_matches('/').to_string() })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.host, self.path)
    }
}

/// One app instance that can take requests on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub addr: SocketAddr,
    /// The instance guid: the `__VCAP_ID__` sticky-session value.
    pub instance_id: String,
    pub index: u32,
    pub app_guid: String,
    /// For logs: the process the instance runs.
    pub process_guid: String,
}

impl EndpointSpec {
    fn check(&self) -> Result<(), RouterError> {
        let bad = |reason| Err(RouterError::InvalidEndpoint { instance_id: self.instance_id.clone(), reason });
        if self.instance_id.is_empty() || !self.instance_id.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
            return bad("the instance id must be non-empty printable ASCII without ';'");
        }
        if self.addr.port() == 0 {
            return bad("the port must not be 0");
        }
        Ok(())
    }
}

/// An endpoint in the table, with its count of requests in flight (least-connection).
#[derive(Debug)]
pub struct Endpoint {
    pub spec: EndpointSpec,
    active: AtomicUsize,
}

impl Endpoint {
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts one request in flight until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }
}

pub(crate) struct ActiveGuard(Arc<Endpoint>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a pool picks an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConnection,
}

/// The endpoints of one route.
#[derive(Debug)]
pub struct Pool {
    key: RouteKey,
    endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
}

impl Pool {
    pub fn key(&self) -> &RouteKey {
        &self.key
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Picks an endpoint not in `tried`: the sticky instance if it is here, else by `balance`.
    pub(crate) fn choose(
        &self,
        balance: Balance,
        sticky: Option<&str>,
        tried: &[usize],
    ) -> Option<(usize, &Arc<Endpoint>)> {
        let candidates = || self.endpoints.iter().enumerate().filter(|(i, _)| !tried.contains(i));
        if let Some(id) = sticky
            && let Some(found) = candidates().find(|(_, e)| e.spec.instance_id == id)
        {
            return Some(found);
        }
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let rotated = (0..n).map(|k| (start + k) % n).filter(|i| !tried.contains(i));
        match balance {
            Balance::RoundRobin => rotated.map(|i| (i, &self.endpoints[i])).next(),
            Balance::LeastConnection => rotated.map(|i| (i, &self.endpoints[i])).min_by_key(|(_, e)| e.active()),
        }
    }
}

#[derive(Debug, Default)]
struct HostRoutes {
    /// Longest path first, so the first match is the longest prefix.
    routes: Vec<Arc<Pool>>,
}

/// An immutable snapshot of all routes.
#[derive(Debug, Default)]
pub struct RouteTable {
    hosts: HashMap<String, Arc<HostRoutes>>,
}

impl RouteTable {
    /// The pool for a request: `host` as sent (any case, maybe with a port), `path` without query.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Pool>> {
        let host = normalize_host(host);
        let exact = self.hosts.get(host.as_ref()).and_then(|h| match_path(h, path));
        exact.or_else(|| {
            // Wildcards: *.b.c for a.b.c, then *.c.
            let mut rest = host.as_ref();
            while let Some((_, parent)) = rest.split_once('.') {
                if let Some(found) = self.hosts.get(&format!("*.{parent}")).and_then(|h| match_path(h, path)) {
                    return Some(found);
                }
                rest = parent;
            }
            None
        })
    }

    pub fn route_count(&self) -> usize {
        self.hosts.values().map(|h| h.routes.len()).sum()
    }

    pub fn endpoint_count(&self) -> usize {
        self.hosts.values().flat_map(|h| &h.routes).map(|p| p.len()).sum()
    }

    fn pool(&self, key: &RouteKey) -> Option<&Arc<Pool>> {
        self.hosts.get(&key.host)?.routes.iter().find(|p| p.key == *key)
    }

    /// A copy with `key`'s pool replaced (or removed when `endpoints` is empty).
    fn with_pool(&self, key: &RouteKey, endpoints: Vec<Arc<Endpoint>>) -> RouteTable {
        let mut hosts = self.hosts.clone();
        let mut routes: Vec<Arc<Pool>> = hosts
            .get(&key.host)
            .map(|h| h.routes.iter().filter(|p| p.key != *key).cloned().collect())
            .unwrap_or_default();
        if !endpoints.is_empty() {
            routes.push(Arc::new(Pool { key: key.clone(), endpoints, next: AtomicUsize::new(0) }));
        }
        routes.sort_by_key(|p| std::cmp::Reverse(p.key.path.len()));
        if routes.is_empty() {
            hosts.remove(&key.host);
        } else {
            hosts.insert(key.host.clone(), Arc::new(HostRoutes { routes }));
        }
        RouteTable { hosts }
    }
}

fn match_path<'a>(host: &'a HostRoutes, path: &str) -> Option<&'a Arc<Pool>> {
    host.routes.iter().find(|p| {
        let prefix = p.key.path.as_str();
        prefix.is_empty()
            || (path.len() >= prefix.len()
                && path.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
                && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
    })
}

/// `Host` header or authority → route host: port stripped, lowercased (no copy when already so).
pub(crate) fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = match host.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => host, // a bare IPv6 address
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// The shared, updatable route table. Cloning shares it.
#[derive(Clone, Default)]
pub struct TableHandle {
    current: Arc<ArcSwap<RouteTable>>,
    writer: Arc<Mutex<()>>,
}

impl TableHandle {
    pub fn new() -> TableHandle {
        TableHandle::default()
    }

    /// The current snapshot (one atomic load; never blocks).
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.current.load()
    }

    /// Replaces the whole table. Every route and endpoint is checked first; on an error
    /// nothing changes. Endpoints already known keep their in-flight counts.
    pub fn replace(&self, routes: Vec<(RouteKey, Vec<EndpointSpec>)>) -> Result<(), RouterError> {
        let mut seen = std::collections::HashSet::new();
        for (key, endpoints) in &routes {
            if !seen.insert(key.clone()) {
                return Err(RouterError::DuplicateRoute { route: key.to_string() });
            }
            endpoints.iter().try_for_each(EndpointSpec::check)?;
        }
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        let mut table = RouteTable::default();
        for (key, specs) in routes {
            let previous = old.pool(&key);
            let endpoints = specs.into_iter().map(|spec| reuse(previous, spec)).collect();
            table = table.with_pool(&key, endpoints);
        }
        self.current.store(Arc::new(table));
        Ok(())
    }

    /// Adds an endpoint to a route (creating the route); an endpoint with the same instance
    /// id is replaced.
    pub fn add_endpoint(&self, key: &RouteKey, spec: EndpointSpec) -> Result<(), RouterError> {
        spec.check()?;
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        let previous = old.pool(key);
        let mut endpoints: Vec<Arc<Endpoint>> = previous
            .map(|p| p.endpoints.iter().filter(|e| e.spec.instance_id != spec.instance_id).cloned().collect())
            .unwrap_or_default();
        endpoints.push(reuse(previous, spec));
        self.current.store(Arc::new(old.with_pool(key, endpoints)));
        Ok(())
    }

    /// Removes one instance from a route (the route goes when it was the last). New requests
    /// stop reaching it at once; requests already on it finish. Returns whether it was there.
    pub fn remove_endpoint(&self, key: &RouteKey, instance_id: &str) -> bool {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        let Some(pool) = old.pool(key) else { return false };
        let endpoints: Vec<Arc<Endpoint>> =
            pool.endpoints.iter().filter(|e| e.spec.instance_id != instance_id).cloned().collect();
        if endpoints.len() == pool.endpoints.len() {
            return false;
        }
        self.current.store(Arc::new(old.with_pool(key, endpoints)));
        true
    }

    /// Removes a route and all its endpoints. Returns whether it was there.
    pub fn remove_route(&self, key: &RouteKey) -> bool {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        if old.pool(key).is_none() {
            return false;
        }
        self.current.store(Arc::new(old.with_pool(key, Vec::new())));
        true
    }
}

fn reuse(previous: Option<&Arc<Pool>>, spec: EndpointSpec) -> Arc<Endpoint> {
    previous
        .and_then(|p| p.endpoints.iter().find(|e| e.spec == spec).cloned())
        .unwrap_or_else(|| Arc::new(Endpoint { spec, active: AtomicUsize::new(0) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(port: u16, id: &str) -> EndpointSpec {
        EndpointSpec {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            instance_id: id.into(),
            index: 0,
            app_guid: "app".into(),
            process_guid: "proc".into(),
        }
    }

    #[test]
    fn longest_prefix_wins_and_hosts_are_normalized() {
        let t = TableHandle::new();
        t.add_endpoint(&RouteKey::new("App.Example.com", "").unwrap(), spec(1, "a")).unwrap();
        t.add_endpoint(&RouteKey::new("app.example.com", "/api/").unwrap(), spec(2, "b")).unwrap();
        t.add_endpoint(&RouteKey::new("*.example.com", "").unwrap(), spec(3, "c")).unwrap();
        let s = t.snapshot();
        let port = |host, path| s.lookup(host, path).map(|p| p.endpoints[0].spec.addr.port());
        assert_eq!(port("APP.example.com:8080", "/"), Some(1));
        assert_eq!(port("app.example.com", "/api"), Some(2));
        assert_eq!(port("app.example.com", "/api/v1"), Some(2));
        assert_eq!(port("app.example.com", "/apix"), Some(1));
        assert_eq!(port("other.example.com", "/"), Some(3));
        assert_eq!(port("a.b.example.com", "/"), Some(3));
        assert_eq!(port("example.org", "/"), None);
        assert_eq!((s.route_count(), s.endpoint_count()), (3, 3));
    }

    #[test]
    fn bad_input_is_refused_and_changes_nothing() {
        let t = TableHandle::new();
        let key = RouteKey::new("a.example.com", "").unwrap();
        t.add_endpoint(&key, spec(1, "a")).unwrap();
        assert!(RouteKey::new("bad host", "").is_err());
        assert!(RouteKey::new("a..b", "").is_err());
        assert!(RouteKey::new("a.b", "no-slash").is_err());
        assert!(t.add_endpoint(&key, spec(0, "z")).is_err());
        assert!(t.add_endpoint(&key, spec(2, "")).is_err());
        let dup = vec![(key.clone(), vec![spec(3, "x")]), (key.clone(), vec![spec(4, "y")])];
        assert!(matches!(t.replace(dup), Err(RouterError::DuplicateRoute { .. })));
        let s = t.snapshot();
        assert_eq!(s.lookup("a.example.com", "/").unwrap().endpoints[0].spec.addr.port(), 1);
        assert_eq!(s.endpoint_count(), 1);
    }

    #[test]
    fn removal_drops_empty_routes() {
        let t = TableHandle::new();
        let key = RouteKey::new("a.example.com", "/p").unwrap();
        t.add_endpoint(&key, spec(1, "a")).unwrap();
        t.add_endpoint(&key, spec(2, "b")).unwrap();
        assert!(t.remove_endpoint(&key, "a"));
        assert!(!t.remove_endpoint(&key, "a"));
        assert_eq!(t.snapshot().endpoint_count(), 1);
        assert!(t.remove_endpoint(&key, "b"));
        assert!(t.snapshot().lookup("a.example.com", "/p").is_none());
        assert_eq!(t.snapshot().route_count(), 0);
    }

    #[test]
    fn round_robin_and_least_connection_and_sticky() {
        let t = TableHandle::new();
        let key = RouteKey::new("a.example.com", "").unwrap();
        t.replace(vec![(key, vec![spec(1, "a"), spec(2, "b"), spec(3, "c")])]).unwrap();
        let s = t.snapshot();
        let pool = s.lookup("a.example.com", "/").unwrap();
        let picks: Vec<u16> =
            (0..6).map(|_| pool.choose(Balance::RoundRobin, None, &[]).unwrap().1.spec.addr.port()).collect();
        assert_eq!(picks, [1, 2, 3, 1, 2, 3]);
        let _busy = [pool.endpoints[0].begin(), pool.endpoints[2].begin()];
        for _ in 0..3 {
            assert_eq!(pool.choose(Balance::LeastConnection, None, &[]).unwrap().1.spec.addr.port(), 2);
        }
        assert_eq!(pool.choose(Balance::RoundRobin, Some("c"), &[]).unwrap().1.spec.addr.port(), 3);
        assert_eq!(pool.choose(Balance::RoundRobin, Some("c"), &[2, 0]).unwrap().1.spec.addr.port(), 2);
        assert!(pool.choose(Balance::RoundRobin, None, &[0, 1, 2]).is_none());
    }
}

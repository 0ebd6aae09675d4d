//! The router's table from the platform's state: every route mapping (route → app
//! process on a port) joined with the instances the scheduler reports RUNNING. Rebuilt
//! whole on every change (a mapping, an app start/stop, an instance starting, crashing or
//! stopping) and every few seconds; the router swaps it in atomically.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hearth_router::{EndpointSpec, RouteKey, TableHandle};
use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{ActualState, PreferredAddress};
use hearth_store::{self as store, Domain, Process, Route, RouteMapping, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How often the table is rebuilt when nothing says it changed.
const REFRESH: Duration = Duration::from_secs(5);

/// Computes the route table: (route, endpoints) for every route with a mapping.
pub async fn table(store: &Store, sched: &SchedulerStore) -> anyhow::Result<Vec<(RouteKey, Vec<EndpointSpec>)>> {
    let mut conn = store.conn().await?;
    let mappings: Vec<RouteMapping> = store::find_all(&mut conn, vec![]).await?;
    let routes: Vec<Route> = store::find_all(&mut conn, vec![]).await?;
    let domains: Vec<Domain> = store::find_all(&mut conn, vec![]).await?;
    let processes: Vec<Process> = store::find_all(&mut conn, vec![]).await?;
    drop(conn);
    let desired = sched.desired_lrps().await?;
    let actual = sched.actual_lrps(None).await?;
    let mut out: BTreeMap<String, (RouteKey, Vec<EndpointSpec>)> = BTreeMap::new();
    for route in &routes {
        let Some(domain) = domains.iter().find(|d| d.guid == route.domain_guid) else { continue };
        if route.port.is_some() {
            continue; // TCP routes are not HTTP routes.
        }
        let host = if route.host.is_empty() { domain.name.clone() } else { format!("{}.{}", route.host, domain.name) };
        let Ok(key) = RouteKey::new(&host, &route.path) else { continue };
        let entry = out.entry(route.guid.clone()).or_insert_with(|| (key, Vec::new()));
        for m in mappings.iter().filter(|m| m.route_guid == route.guid) {
            let Some(process) = processes.iter().find(|p| p.app_guid == m.app_guid && p.process_type == m.process_type)
            else {
                continue;
            };
            let prefix = format!("{}-", process.guid);
            for lrp in desired.iter().filter(|d| d.process_guid.starts_with(&prefix)) {
                for a in
                    actual.iter().filter(|a| a.key.process_guid == lrp.process_guid && a.state == ActualState::Running)
                {
                    let (Some(instance), Some(address)) = (&a.instance, a.address.as_deref()) else { continue };
                    // A cell on another machine is dialled at its address and the mapped host port.
                    let dial = |p: &hearth_scheduler::actual::PortMapping| match a.preferred_address {
                        PreferredAddress::Instance => p.container_port,
                        PreferredAddress::Host => p.host_port,
                    };
                    let port = if m.app_port < 0 {
                        a.ports.first().map(dial)
                    } else {
                        a.ports.iter().find(|p| i64::from(p.container_port) == m.app_port).map(dial)
                    };
                    let (Some(port), Ok(ip)) = (port, address.parse()) else { continue };
                    entry.1.push(EndpointSpec {
                        addr: SocketAddr::new(ip, port),
                        instance_id: instance.instance_guid.clone(),
                        index: a.key.index,
                        app_guid: m.app_guid.clone(),
                        process_guid: process.guid.clone(),
                    });
                }
            }
        }
    }
    // Two routes can share a host and path only across domains' case; keep one entry per key.
    let mut merged: BTreeMap<(String, String), (RouteKey, Vec<EndpointSpec>)> = BTreeMap::new();
    for (key, endpoints) in out.into_values() {
        let slot =
            merged.entry((key.host().to_string(), key.path().to_string())).or_insert_with(|| (key.clone(), Vec::new()));
        slot.1.extend(endpoints);
    }
    Ok(merged.into_values().filter(|(_, e)| !e.is_empty()).collect())
}

/// Keeps `handle` current until `shutdown`.
pub async fn run(
    store: Store,
    sched: SchedulerStore,
    handle: TableHandle,
    changed: std::sync::Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut events = sched.subscribe();
    loop {
        match table(&store, &sched).await {
            Ok(routes) => {
                if let Err(e) = handle.replace(routes) {
                    tracing::warn!(error = %e, "the route table was refused");
                }
            }
            Err(e) => tracing::warn!(error = %e, "computing the route table failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = changed.notified() => {}
            event = events.recv() => {
                if matches!(event, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    events = sched.subscribe();
                }
            }
            _ = tokio::time::sleep(REFRESH) => {}
        }
        // Let a burst of changes settle into one rebuild.
        tokio::time::sleep(Duration::from_millis(10)).await;
        while events.try_recv().is_ok() {}
    }
}

/// Docker staging's view of registries: the image store's puller, config only.
pub struct RegistryInspector(pub hearth_images::Puller);

impl hearth_api::ImageInspector for RegistryInspector {
    fn inspect<'a>(
        &'a self,
        reference: &'a str,
        credentials: Option<(&'a str, &'a str)>,
    ) -> hearth_api::BoxFuture<'a, Result<hearth_api::ImageInfo, String>> {
        Box::pin(async move {
            let credentials = match credentials {
                Some((u, p)) => hearth_images::Credentials::Basic { username: u.into(), password: p.into() },
                None => hearth_images::Credentials::Anonymous,
            };
            let (digest, config) = self
                .0
                .inspect(reference, &credentials)
                .await
                .map_err(|e| format!("cannot read image {reference}: {e}"))?;
            Ok(hearth_api::ImageInfo {
                digest: digest.to_string(),
                entrypoint: config.entrypoint,
                cmd: config.cmd,
                user: config.user,
                working_dir: config.working_dir,
                ports: config.exposed_ports,
            })
        })
    }
}

/// The router's access records as `RTR` lines in the app's logs, in Gorouter's format.
pub struct AccessLines(pub hearth_logs::Store);

impl hearth_router::AccessLog for AccessLines {
    fn record(&self, r: hearth_router::AccessRecord) {
        let Some(app) = r.app_id.as_deref() else { return };
        let index = r.app_index.unwrap_or(0);
        let source = hearth_logs::LineSource::new(app, &index.to_string(), "RTR", hearth_logs::LogStream::Out);
        let _ = self.0.append(source.envelope(access_line(&r).into_bytes()));
    }
}

/// One Gorouter access line.
pub fn access_line(r: &hearth_router::AccessRecord) -> String {
    let at = time::OffsetDateTime::from(r.started_at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let quoted = |v: Option<&str>| format!("\"{}\"", v.unwrap_or("-"));
    format!(
        "{} - [{at}] \"{} {} {}\" {} {} {} \"-\" {} \"{}\" {} x_forwarded_for:{} x_forwarded_proto:{} \
         vcap_request_id:{} response_time:{:.6} app_id:{} app_index:\"{}\" instance_id:{} x_cf_routererror:{}",
        r.host,
        r.method,
        r.path,
        r.protocol,
        r.status,
        r.bytes_received,
        r.bytes_sent,
        quoted(r.user_agent.as_deref()),
        r.remote_addr,
        quoted(r.backend_addr.map(|a| a.to_string()).as_deref()),
        quoted(r.x_forwarded_for.as_deref()),
        quoted(r.x_forwarded_proto.as_deref()),
        quoted(r.vcap_request_id.as_deref()),
        r.response_time.as_secs_f64(),
        quoted(r.app_id.as_deref()),
        r.app_index.map_or("-".to_string(), |i| i.to_string()),
        quoted(r.instance_id.as_deref()),
        quoted(r.router_error),
    )
}

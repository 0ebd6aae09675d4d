//! Desired LRPs for the cell tests, how an instance answers at the address the store gives
//! (as the router dials it), and a watch that every index keeps a copy that answers while
//! something happens (a drain, a move).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{ActualLrp, ActualState, DesiredLrp, HealthCheck, HealthCheckType, PreferredAddress, RootFs};
use tokio_util::sync::CancellationToken;

/// busybox httpd serving "hello from INDEX" on `$PORT`.
pub const WEB: &str = "mkdir -p /tmp/www && echo \"$GREETING from $CF_INSTANCE_INDEX\" > /tmp/www/index.html \
                       && exec busybox httpd -f -p $PORT -h /tmp/www";

/// `instances` of `command` on the host stack, 64 MB each, port 8080, `GREETING=hello`.
pub fn desired(guid: &str, instances: u32, command: &str, check: HealthCheckType) -> DesiredLrp {
    DesiredLrp {
        process_guid: guid.into(),
        app_guid: format!("app-{guid}"),
        instances,
        memory_mb: 64,
        disk_mb: 64,
        max_pids: 256,
        rootfs: RootFs::Stack("cflinuxfs4".into()),
        image_credentials: None,
        droplet: None,
        start_command: command.into(),
        env: BTreeMap::from([("GREETING".to_string(), "hello".to_string())]),
        ports: vec![8080],
        health_check: HealthCheck { kind: check, endpoint: None, start_timeout_secs: 30, invocation_timeout_secs: 1 },
        routes: vec![],
        log_source_id: guid.into(),
        metric_tags: BTreeMap::new(),
        placement_tags: BTreeSet::new(),
        version: 0,
    }
}

/// What an instance answers at the address and port the store gives, if it answers.
pub async fn reaches(a: &ActualLrp) -> Option<String> {
    let mapping = a.ports.first()?;
    let port = match a.preferred_address {
        PreferredAddress::Instance => mapping.container_port,
        PreferredAddress::Host => mapping.host_port,
    };
    let url = format!("http://{}:{port}/", a.address.as_deref()?);
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().ok()?;
    client.get(&url).send().await.ok()?.text().await.ok()
}

/// Until `stop`, every 25 ms: each index below `instances` of `guid` must have a RUNNING
/// copy (ordinary or evacuating) that answers "hello from INDEX". Answers the indexes that
/// did not, once per miss.
pub fn watch_answers(
    sched: &SchedulerStore,
    guid: &str,
    instances: u32,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Vec<u32>> {
    let (sched, guid) = (sched.clone(), guid.to_string());
    tokio::spawn(async move {
        let mut gaps = Vec::new();
        while !stop.is_cancelled() {
            let all = sched.actual_lrps(Some(&guid)).await.unwrap();
            for index in 0..instances {
                let mut answered = false;
                for a in all.iter().filter(|a| a.key.index == index && a.state == ActualState::Running) {
                    answered |= reaches(a).await.is_some_and(|t| t.trim() == format!("hello from {index}"));
                }
                if !answered {
                    gaps.push(index);
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        gaps
    })
}

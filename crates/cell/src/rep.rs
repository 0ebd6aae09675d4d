//! The cell (Diego's rep and executor): registers this machine with the scheduler,
//! heartbeats, and runs the LRP instances the auction gives it — claim, create the
//! container, start it, report RUNNING once the health check passes, keep checking, report
//! a crash with its reason, stop gracefully when told. A restarted cell finds its running
//! containers again and watches them on; instances whose container is gone are reported
//! crashed, and `lrp-` containers no instance owns are destroyed.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_containers::{ContainerId, ContainerInfo, ExitStatus, Status};
use hearth_logs::{LineSource, LogStream};
use hearth_scheduler::actual::{Instance, PortMapping};
use hearth_scheduler::{
    ActualLrpKey, ActualState, Cell, CellEvent, CellState, DesiredLrp, PreferredAddress, Resources, RootFs,
};
use tokio_util::sync::CancellationToken;

use crate::health::Probe;
use crate::instance::{self, CONTAINER_PREFIX};
use crate::link::SchedulerLink;
use crate::node::Node;

/// A cell's settings.
#[derive(Clone, Debug)]
pub struct CellConfig {
    pub id: String,
    pub zone: String,
    pub capacity: Resources,
    /// Stack names this cell runs on its host stack (e.g. `cflinuxfs4`).
    pub stacks: BTreeSet<String>,
    pub heartbeat_interval: Duration,
    /// Between health checks while an instance starts (Diego: 2 s is its unhealthy rate).
    pub startup_check_interval: Duration,
    /// Between health checks once healthy (Diego: 30 s).
    pub liveness_interval: Duration,
    /// SIGTERM, then SIGKILL after this long (Diego: 10 s).
    pub stop_grace: Duration,
    /// Between removing a stopping instance from the store (the router drops it on that
    /// event) and its SIGTERM, so requests already routed to it are not sent to a dying app.
    pub deregistration_delay: Duration,
    /// Enforce each instance's disk limit (a loop-mounted file system per instance).
    pub disk_limits: bool,
    /// Between container metrics samples (Diego: 15 s); one is taken as soon as an
    /// instance is watched.
    pub metrics_interval: Duration,
    /// This machine's address as others reach it, for a cell on another machine than the
    /// router: instances are then reported at this address and their mapped host ports
    /// (`None`: at their containers' addresses, which only this machine reaches).
    pub advertise_address: Option<IpAddr>,
}

impl CellConfig {
    pub fn new(id: impl Into<String>, capacity: Resources) -> CellConfig {
        CellConfig {
            id: id.into(),
            zone: "z1".into(),
            capacity,
            stacks: BTreeSet::from(["cflinuxfs4".to_string()]),
            heartbeat_interval: Duration::from_secs(5),
            startup_check_interval: Duration::from_millis(500),
            liveness_interval: Duration::from_secs(30),
            stop_grace: Duration::from_secs(10),
            deregistration_delay: Duration::from_millis(500),
            disk_limits: true,
            metrics_interval: Duration::from_secs(15),
            advertise_address: None,
        }
    }
}

/// One cell; cheap to clone.
#[derive(Clone)]
pub struct Rep {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: CellConfig,
    pub(crate) node: Arc<Node>,
    pub(crate) sched: Arc<dyn SchedulerLink>,
    /// Instances this cell runs, by key: how to stop each one's watcher.
    pub(crate) running: Mutex<HashMap<ActualLrpKey, Watch>>,
    /// Tasks this cell runs, by guid: how to cancel each one's watcher.
    pub(crate) tasks: Mutex<HashMap<String, CancellationToken>>,
    /// Where instances' output goes, once set.
    pub(crate) logs: std::sync::OnceLock<hearth_logs::Store>,
    /// Where a droplet layer missing from the image store comes from, once set.
    droplets: std::sync::OnceLock<Arc<dyn DropletSource>>,
    /// Where staging tasks' bits come from and go to, once set.
    pub(crate) staging_bits: std::sync::OnceLock<Arc<dyn crate::staging_task::StagingBits>>,
    /// This machine's address, as instances see it in `CF_INSTANCE_IP`.
    pub(crate) host_ip: IpAddr,
}

/// The first pause between start-up health checks; each next one doubles, up to the
/// cell's `startup_check_interval`.
const STARTUP_FIRST_PAUSE: Duration = Duration::from_millis(5);

/// A boxed future (droplet sources are trait objects).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where the tgz of a droplet comes from when its layer is missing on this cell (a new
/// machine, a lost or pruned image store): the platform's blobstore.
pub trait DropletSource: Send + Sync + 'static {
    /// Writes the tgz of the droplet whose layer is `layer` (`sha256:…`) to `dest`.
    fn fetch<'a>(&'a self, layer: &'a str, dest: &'a std::path::Path) -> BoxFuture<'a, anyhow::Result<()>>;
}

pub(crate) struct Watch {
    pub(crate) instance_guid: String,
    stop: CancellationToken,
    /// Held by the watch while its container comes into being (created and started), and
    /// by a stopper before it removes the container: a stop that arrives mid-creation
    /// waits for it, and a watch that finds itself stopped creates nothing.
    life: Arc<tokio::sync::Mutex<()>>,
}

/// How an instance's watch ended.
enum Ending {
    Crashed(String),
    Stopped,
}

impl Rep {
    /// Registers the cell and takes up what it ran before a restart.
    pub async fn start(config: CellConfig, node: Arc<Node>, sched: impl SchedulerLink) -> anyhow::Result<Rep> {
        let sched: Arc<dyn SchedulerLink> = Arc::new(sched);
        let now = hearth_scheduler::Time::now_utc();
        let cell = Cell {
            id: config.id.clone(),
            capacity: config.capacity,
            zone: config.zone.clone(),
            stacks: config.stacks.clone(),
            supports_images: true,
            placement_tags: BTreeSet::new(),
            state: CellState::Present,
            last_heartbeat: now,
            version: 0,
        };
        sched.register_cell(cell).await?;
        let host_ip = config.advertise_address.unwrap_or_else(instance::host_ip);
        let rep = Rep {
            inner: Arc::new(Inner {
                config,
                node,
                sched,
                running: Mutex::new(HashMap::new()),
                tasks: Mutex::new(HashMap::new()),
                logs: std::sync::OnceLock::new(),
                droplets: std::sync::OnceLock::new(),
                staging_bits: std::sync::OnceLock::new(),
                host_ip,
            }),
        };
        rep.reattach().await?;
        rep.reattach_tasks().await?;
        Ok(rep)
    }

    pub fn id(&self) -> &str {
        &self.inner.config.id
    }

    /// Sends instances' stdout and stderr (from their next start or re-attachment) to `logs`.
    pub fn send_output_to(&self, logs: hearth_logs::Store) {
        let _ = self.inner.logs.set(logs);
    }

    /// Imports missing droplet layers from `source` before instances start.
    pub fn fetch_droplets_from(&self, source: Arc<dyn DropletSource>) {
        let _ = self.inner.droplets.set(source);
    }

    /// Makes sure the droplet layer `layer` is in the image store: fetched from the
    /// droplet source and imported if it is not. The import must give the same digest.
    pub(crate) async fn ensure_droplet(&self, layer: &str) -> anyhow::Result<()> {
        let node = &self.inner.node;
        let digest = hearth_images::Digest::parse(layer).map_err(|e| anyhow::anyhow!("droplet {layer}: {e}"))?;
        if node.images().has_layer(&digest) {
            return Ok(());
        }
        let source = self.inner.droplets.get().ok_or_else(|| {
            anyhow::anyhow!("droplet layer {layer} is not on this cell and there is nowhere to fetch it from")
        })?;
        let work = node.dir().join("droplets");
        std::fs::create_dir_all(&work)?;
        let tgz = work.join(format!("{}.tgz", uuid::Uuid::new_v4()));
        let imported = async {
            source.fetch(layer, &tgz).await?;
            let (images, tgz, work) = (node.images().clone(), tgz.clone(), work.clone());
            tokio::task::spawn_blocking(move || crate::droplet::import(&images, &tgz, &work)).await?
        }
        .await;
        let _ = std::fs::remove_file(&tgz);
        let imported = imported?;
        anyhow::ensure!(imported == digest, "droplet {layer}: its tgz imports as {imported}");
        tracing::info!(%layer, "imported a missing droplet layer");
        Ok(())
    }

    /// Heartbeats until `shutdown` fires.
    pub async fn heartbeat(&self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.config.heartbeat_interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = self.inner.sched.change_cell(&self.inner.config.id, CellEvent::Heartbeat).await {
                        tracing::warn!(cell = %self.inner.config.id, error = %e, "heartbeat failed");
                    }
                }
            }
        }
    }

    /// Takes an auctioned instance: claims it and runs it in the background.
    pub fn perform(&self, key: ActualLrpKey) {
        let rep = self.clone();
        tokio::spawn(async move {
            if let Err(e) = rep.claim_and_run(key.clone()).await {
                tracing::warn!(%key, error = %e, "could not run an auctioned instance");
            }
        });
    }

    /// Stops an instance: removes it from the store (and so from the route table), then
    /// SIGTERM, SIGKILL after the grace period, and its container goes. Returns once it is
    /// gone. The instance is found by the guid the store records for `key`, so this also
    /// stops an evacuating copy (which the store keeps under its own key).
    pub async fn stop(&self, key: &ActualLrpKey) -> anyhow::Result<()> {
        let recorded = self.inner.sched.actual_lrp(key).await?.and_then(|a| a.instance);
        let guid = recorded.filter(|i| i.cell_id == self.inner.config.id).map(|i| i.instance_guid);
        let watch = {
            let mut running = self.inner.running.lock().expect("not poisoned");
            let found = running
                .iter()
                .find(|(k, w)| Some(&w.instance_guid) == guid.as_ref() || (guid.is_none() && *k == key))
                .map(|(k, _)| k.clone());
            found.and_then(|k| running.remove(&k))
        };
        // Out of the store first, so the router drops it before it gets SIGTERM.
        let removed = self.inner.sched.remove_actual(key).await;
        if watch.is_some() || guid.is_some() {
            tokio::time::sleep(self.inner.config.deregistration_delay).await;
        }
        if let Some(watch) = watch {
            watch.stop.cancel();
            let _created = watch.life.lock().await;
            self.stop_container(&instance::container_id(&watch.instance_guid).map_err(anyhow::Error::msg)?).await;
        } else if let Some(guid) = guid {
            self.stop_container(&instance::container_id(&guid).map_err(anyhow::Error::msg)?).await;
        }
        match removed {
            Ok(()) | Err(hearth_scheduler::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stops the container of an instance the store no longer gives this cell (removed,
    /// or moved elsewhere), without touching the store. Unknown instances are ignored, and
    /// so is one the store still gives this cell under another key: the evacuating copy of
    /// an instance whose ordinary key was just offered to other cells runs on until its
    /// replacement does (then the scheduler stops it).
    pub async fn forget(&self, instance_guid: &str) {
        let me = &self.inner.config.id;
        if let Ok(held) = self.inner.sched.actual_lrps_on_cell(me).await
            && held.iter().any(|a| a.instance.as_ref().is_some_and(|i| i.instance_guid == instance_guid))
        {
            return;
        }
        let watch = {
            let mut running = self.inner.running.lock().expect("not poisoned");
            let key = running.iter().find(|(_, w)| w.instance_guid == instance_guid).map(|(k, _)| k.clone());
            key.and_then(|k| running.remove(&k))
        };
        if let Some(watch) = watch {
            watch.stop.cancel();
            let _created = watch.life.lock().await;
            if let Ok(id) = instance::container_id(instance_guid) {
                self.stop_container(&id).await;
            }
        }
    }

    /// Leaves: the scheduler starts this cell's instances elsewhere first, then has this
    /// cell stop its copies (evacuation); nothing new is placed here.
    pub async fn drain(&self) -> anyhow::Result<()> {
        self.inner.sched.change_cell(&self.inner.config.id, CellEvent::Drain).await?;
        Ok(())
    }

    /// Instances this cell watches now.
    pub fn running(&self) -> Vec<ActualLrpKey> {
        self.inner.running.lock().expect("not poisoned").keys().cloned().collect()
    }

    /// Whether no instance runs here any more: none watched, and no instance container
    /// left (a stopped instance's container goes a little after its watch).
    pub async fn is_empty(&self) -> bool {
        if !self.running().is_empty() {
            return false;
        }
        match self.inner.node.runtime().list().await {
            Ok(ids) => !ids.iter().any(|id| id.as_str().starts_with(CONTAINER_PREFIX)),
            Err(_) => false,
        }
    }

    async fn claim_and_run(&self, key: ActualLrpKey) -> anyhow::Result<()> {
        let desired = self
            .inner
            .sched
            .desired_lrp(&key.process_guid)
            .await?
            .ok_or_else(|| anyhow::anyhow!("desired LRP {} is gone", key.process_guid))?;
        let instance =
            Instance { cell_id: self.inner.config.id.clone(), instance_guid: uuid::Uuid::new_v4().to_string() };
        self.inner.sched.claim_actual(&key, instance.clone()).await?;
        self.watch(key, desired, instance, None);
        Ok(())
    }

    /// Runs (or, after a restart, keeps watching) one instance in the background.
    fn watch(&self, key: ActualLrpKey, desired: DesiredLrp, instance: Instance, existing: Option<ContainerInfo>) {
        let stop = CancellationToken::new();
        let life = Arc::new(tokio::sync::Mutex::new(()));
        let watch = Watch { instance_guid: instance.instance_guid.clone(), stop: stop.clone(), life: life.clone() };
        self.inner.running.lock().expect("not poisoned").insert(key.clone(), watch);
        let rep = self.clone();
        tokio::spawn(async move {
            let ending = rep.run_instance(&key, &desired, &instance, existing, &stop, &life).await;
            let (cell, guid) = (&rep.inner.config.id, &instance.instance_guid);
            match ending {
                Ending::Crashed(reason) => {
                    if rep.crashed(&key, &instance, &reason).await {
                        let line = format!("Cell {cell} reports instance {guid} crashed: {reason}");
                        rep.cell_log(&desired, key.index, &line);
                    }
                }
                Ending::Stopped => rep.cell_log(&desired, key.index, &format!("Cell {cell} stopping instance {guid}")),
            }
        });
    }

    async fn run_instance(
        &self,
        key: &ActualLrpKey,
        desired: &DesiredLrp,
        instance: &Instance,
        existing: Option<ContainerInfo>,
        stop: &CancellationToken,
        life: &tokio::sync::Mutex<()>,
    ) -> Ending {
        let node = &self.inner.node;
        let (cell, guid) = (&self.inner.config.id, &instance.instance_guid);
        let creating = life.lock().await;
        if stop.is_cancelled() {
            return Ending::Stopped;
        }
        let info = match existing {
            Some(info) => info,
            None => {
                self.cell_log(desired, key.index, &format!("Cell {cell} creating container for instance {guid}"));
                match self.create(key, desired, instance).await {
                    Ok(info) => {
                        let line = format!("Cell {cell} successfully created container for instance {guid}");
                        self.cell_log(desired, key.index, &line);
                        info
                    }
                    Err(e) => return Ending::Crashed(format!("Failed to create container: {e:#}")),
                }
            }
        };
        let id = info.id.clone();
        let already_running = info.status == Status::Running;
        if !already_running {
            let env = instance::instance_env(self.inner.host_ip, info.network.as_ref());
            if let Err(e) = node.runtime().start_with_env(&id, &env).await {
                return Ending::Crashed(format!("Failed to start the process: {e}"));
            }
            self.cell_log(desired, key.index, "Starting health monitoring of container");
        }
        drop(creating);
        // Output into the app's logs while this watch lasts (and what is left after it).
        let output_done = CancellationToken::new();
        let _output = output_done.clone().drop_guard();
        if let Some(logs) = self.inner.logs.get() {
            let process_type = desired.metric_tags.get("process_type").map_or("web", String::as_str);
            let (stdout, stderr) = node.runtime().output_paths(&id);
            for (path, stream) in [(stdout, LogStream::Out), (stderr, LogStream::Err)] {
                let mut source = LineSource::app(&desired.log_source_id, process_type, key.index, stream);
                for (tag, value) in &desired.metric_tags {
                    source = source.with_tag(tag, value);
                }
                crate::output::follow(logs.clone(), path, source, already_running, output_done.clone());
            }
        }
        let address = info.network.as_ref().map(|n| n.address);
        let first_port = desired.ports.first().copied();
        let probe_addr = match (&info.network, first_port) {
            // A rootless container's address is inside its pasta; its port forward is on the host.
            (Some(network), Some(port)) if node.is_rootless() => network
                .port_mappings
                .iter()
                .find(|m| m.container_port == port)
                .map(|m| SocketAddr::new(IpAddr::from([127, 0, 0, 1]), m.host_port)),
            (network, port) => {
                network.as_ref().map(|n| n.address).zip(port).map(|(a, p)| SocketAddr::new(IpAddr::V4(a), p))
            }
        };
        let probe = Probe::for_check(&desired.health_check, probe_addr);
        let check_timeout = Duration::from_secs(u64::from(desired.health_check.invocation_timeout_secs.max(1)));
        let exited = {
            let node = node.clone();
            let id = id.clone();
            async move { node.runtime().wait(&id).await }
        };
        tokio::pin!(exited);

        // Start-up: healthy within the start timeout, or crashed.
        let healthy_since = self.inner.sched.actual_lrp(key).await.ok().flatten().map(|a| a.state);
        if healthy_since != Some(ActualState::Running) {
            let deadline =
                tokio::time::Instant::now() + Duration::from_secs(u64::from(desired.health_check.start_timeout_secs));
            // Checks come quickly at first (most apps listen within milliseconds) and back
            // off to the configured interval.
            let mut pause = STARTUP_FIRST_PAUSE.min(self.inner.config.startup_check_interval);
            loop {
                let why = match probe.check(check_timeout).await {
                    Ok(()) => break,
                    Err(why) => why,
                };
                tracing::debug!(%key, %why, "not healthy yet");
                if tokio::time::Instant::now() >= deadline {
                    let secs = desired.health_check.start_timeout_secs;
                    return Ending::Crashed(format!("Instance never healthy after {secs}s: {why}"));
                }
                tokio::select! {
                    _ = stop.cancelled() => return Ending::Stopped,
                    exit = &mut exited => return Ending::Crashed(exit_reason(exit)),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(self.inner.config.startup_check_interval);
            }
            let ports: Vec<PortMapping> = info
                .network
                .as_ref()
                .map(|n| {
                    n.port_mappings
                        .iter()
                        .map(|m| PortMapping { container_port: m.container_port, host_port: m.host_port })
                        .collect()
                })
                .unwrap_or_default();
            let (address, preferred) = match self.inner.config.advertise_address {
                Some(host) => (host.to_string(), PreferredAddress::Host),
                None => (address.map(|a| a.to_string()).unwrap_or_default(), PreferredAddress::Instance),
            };
            if let Err(e) = self.inner.sched.start_actual(key, instance.clone(), &address, ports, preferred).await {
                tracing::warn!(%key, error = %e, "could not report the instance running; stopping it");
                // Not ours any more: whoever took the watch is removing the container.
                if self.take_watch(key, &instance.instance_guid) {
                    self.stop_container(&id).await;
                }
                return Ending::Stopped;
            }
            self.cell_log(desired, key.index, "Container became healthy");
        }

        // Container metrics from now on (a sample of a process still starting says little).
        if let Some(logs) = self.inner.logs.get() {
            let interval = self.inner.config.metrics_interval;
            let (node, id, desired) = (node.clone(), id.clone(), desired.clone());
            crate::metrics::sample(logs.clone(), node, id, desired, key.index, interval, output_done.clone());
        }

        // Liveness: keep checking until stopped, crashed or unhealthy.
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ending::Stopped,
                exit = &mut exited => return Ending::Crashed(exit_reason(exit)),
                _ = tokio::time::sleep(self.inner.config.liveness_interval) => {
                    if let Err(why) = probe.check(check_timeout).await {
                        return Ending::Crashed(format!("Instance became unhealthy: {why}"));
                    }
                }
            }
        }
    }

    async fn create(
        &self,
        key: &ActualLrpKey,
        desired: &DesiredLrp,
        instance: &Instance,
    ) -> anyhow::Result<ContainerInfo> {
        let node = &self.inner.node;
        if let RootFs::Image(reference) = &desired.rootfs
            && node.images().image(reference).is_err()
        {
            let mut options = hearth_images::PullOptions::default();
            if let Some(c) = &desired.image_credentials {
                options.credentials =
                    hearth_images::Credentials::Basic { username: c.username.clone(), password: c.password.clone() };
            }
            node.puller().pull(reference, &options).await?;
        }
        if let RootFs::Stack(stack) = &desired.rootfs
            && !self.inner.config.stacks.contains(stack)
        {
            anyhow::bail!("this cell has no stack {stack}");
        }
        if let Some(layer) = &desired.droplet {
            self.ensure_droplet(layer).await?;
        }
        let request = instance::plan(desired, key, &instance.instance_guid, self.inner.config.disk_limits)
            .map_err(anyhow::Error::msg)?;
        node.create(&request).await
    }

    /// A `CELL` line in the instance's app logs, as Diego's executor writes them.
    fn cell_log(&self, desired: &DesiredLrp, index: u32, text: &str) {
        tracing::debug!(process = %desired.process_guid, index, "{text}");
        if let Some(logs) = self.inner.logs.get() {
            let source = LineSource::new(&desired.log_source_id, &index.to_string(), "CELL", LogStream::Out);
            let source = desired.metric_tags.iter().fold(source, |s, (k, v)| s.with_tag(k, v));
            let _ = logs.append(source.envelope(text.as_bytes().to_vec()));
        }
    }

    /// Records a crash of an instance this cell still watches and removes its container;
    /// answers whether it was one (an instance being stopped also ends: its stopper removes
    /// the container, and two removals at once could leave it behind).
    async fn crashed(&self, key: &ActualLrpKey, instance: &Instance, reason: &str) -> bool {
        if !self.take_watch(key, &instance.instance_guid) {
            return false;
        }
        tracing::info!(%key, %reason, "instance crashed");
        if let Ok(id) = instance::container_id(&instance.instance_guid) {
            let _ = self.inner.node.destroy(&id).await;
        }
        if let Err(e) = self.inner.sched.crash_actual(key, instance.clone(), reason).await {
            tracing::warn!(%key, error = %e, "could not record a crash");
        }
        true
    }

    /// Ends this cell's watch of `key` if it is still the one for `instance_guid`; answers
    /// whether it was (and so whether the caller now removes the container).
    fn take_watch(&self, key: &ActualLrpKey, instance_guid: &str) -> bool {
        let mut running = self.inner.running.lock().expect("not poisoned");
        let ours = running.get(key).is_some_and(|w| w.instance_guid == instance_guid);
        if ours {
            running.remove(key);
        }
        ours
    }

    pub(crate) async fn stop_container(&self, id: &ContainerId) {
        let runtime = self.inner.node.runtime();
        if runtime.kill(id, 15).await.is_ok()
            && tokio::time::timeout(self.inner.config.stop_grace, runtime.wait(id)).await.is_err()
        {
            let _ = runtime.kill(id, 9).await;
        }
        if let Err(e) = self.inner.node.destroy(id).await {
            tracing::warn!(%id, error = %e, "could not destroy a stopped instance's container");
        }
    }

    /// After a restart: watch on what still runs, report what is gone, remove what no
    /// instance owns.
    async fn reattach(&self) -> anyhow::Result<()> {
        let sched = &self.inner.sched;
        let actual = sched.actual_lrps_on_cell(&self.inner.config.id).await?;
        let mut owned = BTreeSet::new();
        for lrp in actual {
            let Some(instance) = lrp.instance.clone() else { continue };
            if instance.cell_id != self.inner.config.id || lrp.key.presence != hearth_scheduler::Presence::Ordinary {
                continue;
            }
            let id = instance::container_id(&instance.instance_guid).map_err(anyhow::Error::msg)?;
            owned.insert(id.clone());
            let info = self.inner.node.runtime().lookup(&id).await?;
            let desired = sched.desired_lrp(&lrp.key.process_guid).await?;
            match (info, desired) {
                (Some(info), Some(desired)) if info.status == Status::Running => {
                    self.watch(lrp.key.clone(), desired, instance, Some(info));
                }
                _ if matches!(lrp.state, ActualState::Claimed | ActualState::Running) => {
                    let _ = self.inner.node.destroy(&id).await;
                    let reason = "Instance lost: its container was gone when the cell restarted";
                    if let Err(e) = sched.crash_actual(&lrp.key, instance, reason).await {
                        tracing::warn!(key = %lrp.key, error = %e, "could not record a lost instance");
                    }
                }
                _ => {}
            }
        }
        for id in self.inner.node.runtime().list().await? {
            if id.as_str().starts_with(CONTAINER_PREFIX) && !owned.contains(&id) {
                tracing::info!(%id, "destroying a container no instance owns");
                self.inner.node.destroy(&id).await?;
            }
        }
        Ok(())
    }
}

fn exit_reason(exit: Result<ExitStatus, hearth_containers::Error>) -> String {
    match exit {
        Ok(ExitStatus::Code(code)) => format!("APP/PROC/WEB: Exited with status {code}"),
        Ok(ExitStatus::Signal(9)) => "APP/PROC/WEB: Exited with status 137 (out of memory or killed)".into(),
        Ok(ExitStatus::Signal(signal)) => format!("APP/PROC/WEB: Exited with signal {signal}"),
        Err(e) => format!("APP/PROC/WEB: lost track of the process: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reasons_read_as_cf_shows_them() {
        assert_eq!(exit_reason(Ok(ExitStatus::Code(1))), "APP/PROC/WEB: Exited with status 1");
        assert!(exit_reason(Ok(ExitStatus::Signal(9))).contains("137"));
        assert_eq!(exit_reason(Ok(ExitStatus::Signal(15))), "APP/PROC/WEB: Exited with signal 15");
    }
}

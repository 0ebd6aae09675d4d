//! The async face of the container runtime. Every libcontainer operation runs in a helper
//! process (`helper`); this side writes bundles, spawns helpers, reads state files and
//! cgroup statistics, and cleans up.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::bundle::{self, Bundle};
use crate::cgroup::{self, Usage};
use crate::error::Error;
use crate::helper::{HelperCall, HelperOp};
use crate::id::ContainerId;
use crate::keeper::{self, Keeper, Keepers};
use crate::layout::Layout;
use crate::network::usermode::UserMode;
use crate::network::{Network, NetworkConfig, NetworkInfo, NetworkSpec};
use crate::oci::{self, Placement};
use crate::seccomp_bpf;
use crate::spec::ContainerSpec;
use crate::state::{Action, ExitStatus, Status, status_of};

/// How long a helper may take to create a container before the create is abandoned.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(2);

/// Where and how a `Runtime` keeps its containers.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The runtime's directory (state, bundles, output). Created if missing.
    pub root: PathBuf,
    /// The `hearth` binary, run as `hearth container-helper ...`.
    pub helper: PathBuf,
    pub placement: Placement,
    /// The bridge, subnet, nftables table and host ports of networked containers.
    pub network: NetworkConfig,
}

/// What is known about a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: ContainerId,
    pub status: Status,
    /// The main process's host pid while it exists.
    pub pid: Option<i32>,
    /// How the main process ended, once it has.
    pub exit: Option<ExitStatus>,
    pub usage: Usage,
    pub spec: ContainerSpec,
    /// Address, gateway and mapped ports of a networked container.
    pub network: Option<NetworkInfo>,
}

/// The result of running a container's main process to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessResult {
    pub exit: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub struct Runtime {
    pub(crate) layout: Layout,
    pub(crate) helper: PathBuf,
    pub(crate) placement: Placement,
    keepers: Mutex<HashMap<ContainerId, Keeper>>,
    /// Keepers that said `exited`, being reaped (`destroy` awaits them).
    ending: Mutex<HashMap<ContainerId, tokio::task::JoinHandle<()>>>,
    keepers_from: Keepers,
    networking: Networking,
    warned_cgroups: std::sync::Once,
    /// Whether the cgroup parent has been readied (`cgroup::prepare_parent`).
    parent_ready: std::sync::Once,
    /// The containers' seccomp profile, compiled once.
    seccomp: seccomp_bpf::Compiled,
}

/// How networked containers get their network: a bridge with veths and nftables (root), or
/// a user-mode `pasta` per container (rootless).
enum Networking {
    Bridge(Arc<Network>),
    UserMode(Arc<UserMode>),
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Self {
        let networking = if config.placement.id_map.owner.is_some() {
            Networking::UserMode(Arc::new(UserMode::new(config.network.host_ports.clone())))
        } else {
            Networking::Bridge(Arc::new(Network::new(config.network, &config.root)))
        };
        Self {
            networking,
            keepers_from: Keepers::new(config.helper.clone(), config.root.clone()),
            layout: Layout::new(config.root),
            helper: config.helper,
            placement: config.placement,
            keepers: Mutex::new(HashMap::new()),
            ending: Mutex::new(HashMap::new()),
            warned_cgroups: std::sync::Once::new(),
            parent_ready: std::sync::Once::new(),
            seccomp: seccomp_bpf::Compiled::default(),
        }
    }

    /// Creates a container whose main process waits to be started. On any failure,
    /// everything made so far is removed again. The info it returns has no usage measured
    /// yet (`info` reads it).
    pub async fn create(&self, id: &ContainerId, spec: &ContainerSpec) -> Result<ContainerInfo, Error> {
        let mut config = oci::runtime_spec(id, spec, &self.placement)?;
        if self.is_rootless() && cgroup::mode() == cgroup::Mode::V1 {
            // libcontainer applies limits only together with v1 device rules, which only
            // CAP_SYS_ADMIN may write: a rootless container on v1 gets its cgroups, no limits.
            if let Some(linux) = config.linux_mut() {
                linux.set_resources(None);
            }
            self.warned_cgroups.call_once(|| {
                tracing::warn!(
                    "rootless on cgroup v1: containers get cgroups (usage is measured) but their memory, CPU and \
                     pids limits are not enforced"
                );
            });
        }
        spec.network.as_ref().map(NetworkSpec::validate).transpose()?;
        if self.is_rootless() {
            self.check_rootless_cgroups()?;
        } else {
            let parent = PathBuf::from(format!("/{}", self.placement.cgroup_parent));
            self.parent_ready.call_once(|| cgroup::prepare_parent(&parent));
        }
        let bundle = self.bundle(spec, config)?;
        let (layout, owned_id) = (self.layout.clone(), id.clone());
        let rootfs = (!self.is_rootless()).then(|| spec.rootfs.clone());
        // One hand-off: the directory (whose failure, e.g. an id in use, must not destroy
        // anything) and then the bundle in it (whose failure is cleaned up like the rest).
        let prepare = move || {
            bundle::prepare(&layout, &owned_id, rootfs.as_deref())?;
            Ok(bundle::write(&layout, &owned_id, &bundle))
        };
        let written = on_blocking_thread(id, "create", prepare).await?;
        let created = match written {
            Ok(()) => self.create_in(id, spec).await,
            Err(e) => Err(e),
        };
        match created {
            Ok(pid) => {
                let network = spec.network.as_ref().and_then(|_| Network::read_record(&self.layout.network_file(id)));
                let (status, exit, usage, spec) = (Status::Created, None, Usage::default(), spec.clone());
                Ok(ContainerInfo { id: id.clone(), status, pid: Some(pid), exit, usage, spec, network })
            }
            Err(e) => {
                if let Err(cleanup) = self.destroy(id).await {
                    tracing::warn!(%id, error = %cleanup, "cleanup after a failed create failed too");
                }
                Err(e)
            }
        }
    }

    /// The container's files, serialised; the seccomp profile compiled (once per profile).
    fn bundle(&self, spec: &ContainerSpec, mut config: oci_spec::runtime::Spec) -> Result<Bundle, Error> {
        let invalid = |e: serde_json::Error| Error::InvalidSpec(e.to_string());
        let mut seccomp_program = None;
        if let Some(linux) = config.linux_mut()
            && let Some(profile) = linux.seccomp().clone()
        {
            seccomp_program = Some(self.seccomp.program(&profile).map_err(Error::InvalidSpec)?);
            linux.set_seccomp(None);
        }
        Ok(Bundle {
            spec_json: serde_json::to_vec_pretty(spec).map_err(invalid)?,
            config_json: serde_json::to_vec_pretty(&config).map_err(invalid)?,
            seccomp_program,
        })
    }

    /// Whether this runtime runs as an ordinary user (its id map has an owner).
    pub fn is_rootless(&self) -> bool {
        self.placement.id_map.owner.is_some()
    }

    /// A rootless runtime needs its cgroup parent delegated to its user to enforce limits.
    /// On cgroup v2 libcontainer goes on without (the runtime warns once); on v1 it cannot
    /// create a container at all, so the create is refused with what an admin must do.
    fn check_rootless_cgroups(&self) -> Result<(), Error> {
        let parent = PathBuf::from(format!("/{}", self.placement.cgroup_parent));
        let Some(dir) = cgroup::undelegated(&parent) else { return Ok(()) };
        match cgroup::mode() {
            cgroup::Mode::V2 => {
                self.warned_cgroups.call_once(|| {
                    tracing::warn!(
                        cgroup = %dir.display(),
                        "rootless: the cgroup parent is not delegated to this user: memory, CPU and pids limits \
                         are not enforced"
                    );
                });
                Ok(())
            }
            cgroup::Mode::V1 => Err(Error::Rootless(format!(
                "cgroup v1: {} is not writable by uid {}. libcontainer puts every container in a cgroup of \
                 every v1 hierarchy, so an ordinary user needs {} delegated: as root, create it in each \
                 /sys/fs/cgroup/<hierarchy>, copy cpuset.cpus and cpuset.mems into the cpuset one, and chown \
                 it to the user",
                dir.display(),
                nix::unistd::geteuid(),
                parent.display()
            ))),
        }
    }

    /// Has a keeper create the container from its written bundle; returns its init's pid.
    async fn create_in(&self, id: &ContainerId, spec: &ContainerSpec) -> Result<i32, Error> {
        let log_path = self.layout.helper_log(id);
        let mut keeper = self.keepers_from.keep(id, &log_path).await?;
        let lines = keeper.lines.as_mut().expect("a new keeper's output");
        let first = tokio::time::timeout(CREATE_TIMEOUT, lines.next_line()).await;
        let failure = |message: String| Error::Helper { id: id.clone(), op: "create", message };
        let line = match first {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Ok(Err(_)) => {
                keeper.process.wait().await;
                let log = tokio::fs::read_to_string(&log_path).await.unwrap_or_default();
                return Err(failure(format!("the helper ended without an answer: {}", log.trim())));
            }
            Err(_) => {
                keeper.process.kill().await;
                return Err(failure(format!("no answer within {CREATE_TIMEOUT:?}")));
            }
        };
        let Some(pid) = line.strip_prefix("created ").and_then(|pid| pid.parse::<i32>().ok()) else {
            keeper.process.wait().await;
            return Err(failure(line.strip_prefix("error ").unwrap_or(&line).to_string()));
        };
        self.keepers.lock().expect("keepers lock").insert(id.clone(), keeper);
        if let Some(net) = &spec.network {
            self.attach_network(id, pid, net).await?;
        }
        Ok(pid)
    }

    /// Networks a created container (its init is `pid`) before it starts.
    async fn attach_network(&self, id: &ContainerId, pid: i32, spec: &NetworkSpec) -> Result<(), Error> {
        let (id, spec, record) = (id.clone(), spec.clone(), self.layout.network_file(id));
        let attach: Box<dyn FnOnce() -> Result<(), Error> + Send> = match &self.networking {
            Networking::Bridge(network) => {
                let network = network.clone();
                Box::new(move || network.attach(&id, pid, &spec, &record).map(drop))
            }
            Networking::UserMode(usermode) => {
                let usermode = usermode.clone();
                // Ports now, pasta once the container has started (`connect_user_mode`).
                Box::new(move || usermode.plan(&id, &spec, &record).map(drop))
            }
        };
        tokio::task::spawn_blocking(attach).await.map_err(|e| Error::Network(e.to_string()))?
    }

    /// Starts the main process with `env` added to its environment: what is only known
    /// once the container exists (its address, its host ports). Needs a spec with `init`
    /// and a writable root filesystem: the lines go to `/.hearth-start-env` in it, which the
    /// init reads before it execs the main process.
    pub async fn start_with_env(&self, id: &ContainerId, env: &[String]) -> Result<(), Error> {
        let info = self.info(id).await?;
        if !info.spec.init || info.spec.rootfs_readonly {
            return Err(Error::InvalidSpec("a start environment needs init and a writable root filesystem".into()));
        }
        let path = info.spec.rootfs.join(crate::init::START_ENV.trim_start_matches('/'));
        let text: String =
            env.iter().filter(|e| e.contains('=') && !e.contains('\n')).map(|e| format!("{e}\n")).collect();
        tokio::fs::write(&path, text).await.map_err(Error::io(&path))?;
        self.start(id).await
    }

    /// Starts the main process of a created container.
    pub async fn start(&self, id: &ContainerId) -> Result<(), Error> {
        let info = self.status_info(id).await?;
        info.status.apply(id, Action::Start)?;
        let control = self.keepers.lock().expect("keepers lock").get_mut(id).and_then(|k| match (&k.stdin, &k.lines) {
            (Some(_), Some(_)) => k.stdin.take().zip(k.lines.take()),
            _ => None,
        });
        let Some((mut stdin, mut lines)) = control else {
            // A keeper from before a restart: start through a one-off helper.
            self.run_helper(id, HelperOp::Start, "start").await?;
            return self.connect_user_mode(id, &info).await;
        };
        let failure = |message: String| Error::Helper { id: id.clone(), op: "start", message };
        stdin.write_all(b"start\n").await.map_err(|e| failure(e.to_string()))?;
        let answer = lines.next_line().await;
        // Its output goes on: `exited` comes there (`wait`).
        if let Some(keeper) = self.keepers.lock().expect("keepers lock").get_mut(id) {
            keeper.lines = Some(lines);
        }
        match answer {
            Ok(Some(line)) if line == "started" => self.connect_user_mode(id, &info).await,
            Ok(Some(line)) => Err(failure(line.strip_prefix("error ").unwrap_or(&line).to_string())),
            Ok(None) => Err(failure("the keeper ended".into())),
            Err(e) => Err(failure(e.to_string())),
        }
        // Dropping stdin here tells the keeper nothing more is coming: it waits.
    }

    /// A rootless networked container's pasta, once it has started (see `usermode`).
    async fn connect_user_mode(&self, id: &ContainerId, info: &ContainerInfo) -> Result<(), Error> {
        let (Networking::UserMode(usermode), Some(_), Some(pid)) = (&self.networking, &info.spec.network, info.pid)
        else {
            return Ok(());
        };
        let record = self.layout.network_file(id);
        let planned = Network::read_record(&record)
            .ok_or_else(|| Error::Network(format!("container {id}: no network record")))?;
        let (usermode, id, pid_file) = (usermode.clone(), id.clone(), self.layout.pasta_pid(id));
        let connect = move || {
            // Hearth's init forks the main process right after the start: wait for one.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let target = loop {
                match crate::rootless::inspectable_pid(pid) {
                    Ok(target) => break target,
                    Err(e) if std::time::Instant::now() > deadline => return Err(Error::Network(e)),
                    Err(_) => std::thread::sleep(POLL),
                }
            };
            usermode.connect(&id, target, &planned, &pid_file)
        };
        tokio::task::spawn_blocking(connect).await.map_err(|e| Error::Network(e.to_string()))?
    }

    /// Waits until the main process has ended and returns how.
    pub async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, Error> {
        // Our own keeper says when the exit status is on file; it need not be waited for.
        let lines = self.keepers.lock().expect("keepers lock").get_mut(id).and_then(|keeper| {
            keeper.stdin = None;
            keeper.lines.take()
        });
        if let Some(mut lines) = lines
            && let Some(said) = Keeper::until_exited(&mut lines).await
        {
            let keeper = self.keepers.lock().expect("keepers lock").remove(id);
            if let Some(keeper) = keeper {
                self.ending.lock().expect("ending lock").insert(id.clone(), tokio::spawn(keeper::reap(keeper.process)));
            }
            // Said once it was on file: no need to read it back.
            if let Some(exit) = said {
                return Ok(exit);
            }
        }
        loop {
            // Check the keeper before the file: a keeper that is gone has written the file
            // (or never will), so the read after the check is conclusive.
            let keeper_alive = self.keeper_pid(id).await.is_some();
            if let Some(exit) = self.read_exit(id).await? {
                return Ok(exit);
            }
            if !self.layout.spec_file(id).exists() {
                return Err(Error::NotFound(id.clone()));
            }
            if !keeper_alive {
                let message = "its keeper ended without recording an exit status".into();
                return Err(Error::Helper { id: id.clone(), op: "wait", message });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn read_exit(&self, id: &ContainerId) -> Result<Option<ExitStatus>, Error> {
        let exit_file = self.layout.exit_file(id);
        match tokio::fs::read(&exit_file).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Helper {
                id: id.clone(),
                op: "wait",
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(exit_file)(e)),
        }
    }

    /// Starts the main process, waits for its end, and returns its exit status and output.
    pub async fn run(&self, id: &ContainerId) -> Result<ProcessResult, Error> {
        self.start(id).await?;
        let exit = self.wait(id).await?;
        let (stdout, stderr) = self.output(id).await?;
        Ok(ProcessResult { exit, stdout, stderr })
    }

    /// The files the main process's stdout and stderr go to (they grow while it runs).
    pub fn output_paths(&self, id: &ContainerId) -> (std::path::PathBuf, std::path::PathBuf) {
        (self.layout.stdout(id), self.layout.stderr(id))
    }

    /// Everything the main process has written so far to stdout and stderr.
    pub async fn output(&self, id: &ContainerId) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let read = |p: PathBuf| async move { tokio::fs::read(&p).await.map_err(Error::io(p)) };
        Ok((read(self.layout.stdout(id)).await?, read(self.layout.stderr(id)).await?))
    }

    /// Sends a signal (e.g. 15 for SIGTERM) to the main process.
    pub async fn kill(&self, id: &ContainerId, signal: i32) -> Result<(), Error> {
        let info = self.status_info(id).await?;
        info.status.apply(id, Action::Kill)?;
        self.run_helper(id, HelperOp::Kill(signal), "kill").await
    }

    /// State, main pid, exit status and resource use of a container.
    pub async fn info(&self, id: &ContainerId) -> Result<ContainerInfo, Error> {
        self.lookup(id).await?.ok_or_else(|| Error::NotFound(id.clone()))
    }

    /// Like `info`, but `None` for a container that does not exist.
    pub async fn lookup(&self, id: &ContainerId) -> Result<Option<ContainerInfo>, Error> {
        self.look(id, true).await
    }

    /// `info` without reading the cgroup's usage (left at its default, nothing measured):
    /// for the runtime's own checks, which need the status.
    async fn status_info(&self, id: &ContainerId) -> Result<ContainerInfo, Error> {
        self.look(id, false).await?.ok_or_else(|| Error::NotFound(id.clone()))
    }

    /// Reads everything about a container on one blocking thread (a handful of small
    /// files; usage is a few cgroup files more).
    async fn look(&self, id: &ContainerId, measure: bool) -> Result<Option<ContainerInfo>, Error> {
        let (layout, cgroup_path, owned_id) = (self.layout.clone(), self.placement.cgroup_path(id), id.clone());
        let read = move || -> Result<Option<ContainerInfo>, Error> {
            let spec_file = layout.spec_file(&owned_id);
            let spec: ContainerSpec = match std::fs::read(&spec_file) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::InvalidSpec(e.to_string()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(spec_file)(e)),
            };
            let exit = std::fs::read(layout.exit_file(&owned_id)).ok().and_then(|b| serde_json::from_slice(&b).ok());
            let runtime_state = read_runtime_state(&layout.state_dir(&owned_id));
            let alive = runtime_state.as_ref().and_then(|s| s.pid).filter(|&pid| is_alive(pid));
            let status = status_of(exit, runtime_state.as_ref().map(|s| (s.status.as_str(), alive.is_some())));
            let network = spec.network.as_ref().and_then(|_| Network::read_record(&layout.network_file(&owned_id)));
            let usage = if measure { cgroup::usage(&cgroup_path) } else { Usage::default() };
            Ok(Some(ContainerInfo { id: owned_id, status, pid: alive, exit, usage, spec, network }))
        };
        on_blocking_thread(id, "info", read).await
    }

    /// Every container this runtime's directory holds, including ones created before a
    /// restart of the server.
    pub async fn list(&self) -> Result<Vec<ContainerId>, Error> {
        let dir = self.layout.containers();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(dir)(e)),
        };
        let mut ids = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(Error::io(&dir))? {
            if let Some(id) = entry.file_name().to_str().and_then(|n| ContainerId::new(n).ok()) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Releases everything the container holds: its processes, cgroups, libcontainer
    /// state, bundle and output. Safe to repeat; a container that does not exist is fine.
    pub async fn destroy(&self, id: &ContainerId) -> Result<(), Error> {
        // Done here rather than by libcontainer's delete in a helper (one exec of this
        // binary less per container): the init dies, and with it every process of its pid
        // namespace; then whatever sits in the cgroup (a create that failed half-way).
        // A keeper that said `exited` has reaped the init, and the pid namespace died with
        // it: only the cgroup sweep below is left, with no hand-off of its own.
        let exited = self.ending.lock().expect("ending lock").contains_key(id);
        if !exited {
            self.kill_processes(id).await;
        }
        let ending = self.reap_keeper(id).await;
        crate::exec::end_process_keepers(&self.layout, id).await;
        // Then the rest, on one blocking thread: cgroups, network, files.
        let (network_id, pid_file) = (id.clone(), self.layout.pasta_pid(id));
        let detach: Box<dyn FnOnce() -> Result<(), Error> + Send> = match &self.networking {
            Networking::Bridge(network) => {
                let network = network.clone();
                Box::new(move || network.detach(&network_id))
            }
            Networking::UserMode(usermode) => {
                let usermode = usermode.clone();
                Box::new(move || usermode.detach(&network_id, &pid_file))
            }
        };
        let cgroup_path = self.placement.cgroup_path(id);
        let dirs = [self.layout.state_dir(id), self.layout.container_dir(id)];
        let release = move || {
            let mut problems = Vec::new();
            if exited {
                cgroup::kill_all(&cgroup_path);
            }
            for (dir, e) in cgroup::sweep(&cgroup_path) {
                problems.push(format!("cgroup {}: {e}", dir.display()));
            }
            if let Err(e) = detach() {
                problems.push(e.to_string());
            }
            for dir in dirs {
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        problems.push(format!("{}: {e}", dir.display()))
                    }
                    _ => {}
                }
            }
            problems
        };
        let problems = tokio::task::spawn_blocking(release).await.unwrap_or_else(|e| vec![e.to_string()]);
        // The keeper was ending all along; by now it has, or nearly.
        if let Some(reaping) = ending {
            let _ = reaping.await;
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Helper { id: id.clone(), op: "destroy", message: problems.join("; ") })
        }
    }

    /// SIGKILLs the container's init, the pid libcontainer recorded, but only while its
    /// keeper runs and has not recorded an exit: the keeper is the init's parent and reaps
    /// it just before it records the exit, so until then that pid cannot belong to another
    /// process. Then whatever else is in the cgroup.
    async fn kill_processes(&self, id: &ContainerId) {
        let ours = self.keepers.lock().expect("keepers lock").get_mut(id).map(|k| k.process.running());
        let keeper_runs = match ours {
            Some(running) => running,
            None => self.keeper_pid(id).await.is_some(),
        };
        let exit_file = self.layout.exit_file(id);
        let (state_dir, cgroup_path) = (self.layout.state_dir(id), self.placement.cgroup_path(id));
        let kill = move || {
            let pid = read_runtime_state(&state_dir).and_then(|s| s.pid);
            if let Some(pid) = pid.filter(|&pid| keeper_runs && pid > 0 && !exit_file.exists()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            cgroup::kill_all(&cgroup_path);
        };
        let _ = tokio::task::spawn_blocking(kill).await;
    }

    /// Waits until the container's keeper is done with the container's files (it is, once
    /// the main process is gone and its exit is on file). Our own keeper that said so is
    /// returned still ending, for `destroy` to await last.
    async fn reap_keeper(&self, id: &ContainerId) -> Option<tokio::task::JoinHandle<()>> {
        let keeper = self.keepers.lock().expect("keepers lock").remove(id);
        let deadline = tokio::time::Instant::now() + keeper::EXIT_TIMEOUT;
        if let Some(mut keeper) = keeper {
            keeper.stdin = None;
            let mut exited = false;
            if let Some(mut lines) = keeper.lines.take() {
                let said = tokio::time::timeout_at(deadline, Keeper::until_exited(&mut lines)).await;
                exited = said.is_ok_and(|said| said.is_some());
            }
            if exited {
                return Some(tokio::spawn(keeper::reap(keeper.process)));
            }
            if tokio::time::timeout_at(deadline, keeper.process.wait()).await.is_err() {
                keeper.process.kill().await;
            }
            return None;
        }
        if let Some(reaping) = self.ending.lock().expect("ending lock").remove(id) {
            return Some(reaping);
        }
        // A keeper from before a restart is not our child: watch its pid instead.
        while let Some(pid) = self.keeper_pid(id).await {
            if tokio::time::Instant::now() > deadline {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        None
    }

    /// The pid of the container's keeper, if that process still runs.
    async fn keeper_pid(&self, id: &ContainerId) -> Option<i32> {
        keeper::live(&self.layout.keeper_pid(id), id.as_str())
    }

    /// `hearth container-helper OP ROOT ID …` for `op` on container `id`.
    pub(crate) fn helper_command(&self, id: &ContainerId, op: HelperOp) -> Command {
        let call = HelperCall { op, root: self.layout.root().to_path_buf(), id: id.clone() };
        keeper::helper_command(&self.helper, call.to_args())
    }

    async fn run_helper(&self, id: &ContainerId, op: HelperOp, name: &'static str) -> Result<(), Error> {
        let output =
            self.helper_command(id, op).stdin(Stdio::null()).output().await.map_err(Error::io(&self.helper))?;
        if output.status.success() {
            Ok(())
        } else {
            let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
            Err(Error::Helper { id: id.clone(), op: name, message })
        }
    }
}

/// The part of libcontainer's `state.json` this side reads.
#[derive(Deserialize)]
struct RuntimeState {
    status: String,
    pid: Option<i32>,
}

/// libcontainer's `state.json` in a container's state directory, if it is there and whole.
fn read_runtime_state(dir: &std::path::Path) -> Option<RuntimeState> {
    serde_json::from_slice(&std::fs::read(dir.join("state.json")).ok()?).ok()
}

/// Runs `f` on a blocking thread; a panic there is a failure of `op` on container `id`.
async fn on_blocking_thread<T: Send + 'static>(
    id: &ContainerId,
    op: &'static str,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let joined = tokio::task::spawn_blocking(f).await;
    joined.map_err(|e| Error::Helper { id: id.clone(), op, message: e.to_string() })?
}

/// Alive and not a zombie.
pub(crate) fn is_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised command name, which may itself hold spaces.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|s| s != "Z" && s != "X")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_pid_zero_is_not() {
        assert!(is_alive(std::process::id() as i32));
        assert!(!is_alive(0));
    }
}

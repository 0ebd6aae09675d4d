//! The async face of the container runtime. Every libcontainer operation runs in a helper
//! process (`helper`); this side writes bundles, spawns helpers, reads state files and
//! cgroup statistics, and cleans up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::cgroup::{self, Usage};
use crate::error::Error;
use crate::helper::{HelperCall, HelperOp, SUBCOMMAND};
use crate::id::ContainerId;
use crate::layout::Layout;
use crate::network::usermode::UserMode;
use crate::network::{Network, NetworkConfig, NetworkInfo, NetworkSpec};
use crate::oci::{self, Placement};
use crate::seccomp_bpf;
use crate::spec::ContainerSpec;
use crate::state::{Action, ExitStatus, Status};

/// How long a helper may take to create a container before the create is abandoned.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long destroy waits for a keeper to record the exit of a killed container.
const KEEPER_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
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

/// A keeper this server spawned: its child handle (to reap it) and, until the container
/// is started, its control pipes.
struct Keeper {
    child: Child,
    control: Option<(ChildStdin, Lines<BufReader<ChildStdout>>)>,
}

pub struct Runtime {
    pub(crate) layout: Layout,
    pub(crate) helper: PathBuf,
    pub(crate) placement: Placement,
    keepers: Mutex<HashMap<ContainerId, Keeper>>,
    networking: Networking,
    warned_cgroups: std::sync::Once,
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
            layout: Layout::new(config.root),
            helper: config.helper,
            placement: config.placement,
            keepers: Mutex::new(HashMap::new()),
            warned_cgroups: std::sync::Once::new(),
            seccomp: seccomp_bpf::Compiled::default(),
        }
    }

    /// Creates a container whose main process waits to be started. On any failure,
    /// everything made so far is removed again.
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
            check_rootfs(&spec.rootfs).await?;
        }
        self.prepare_root().await?;
        let dir = self.layout.container_dir(id);
        match tokio::fs::create_dir(&dir).await {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(Error::AlreadyExists(id.clone())),
            other => other.map_err(Error::io(&dir))?,
        }
        match self.create_in(id, spec, &config).await {
            Ok(()) => self.info(id).await,
            Err(e) => {
                if let Err(cleanup) = self.destroy(id).await {
                    tracing::warn!(%id, error = %cleanup, "cleanup after a failed create failed too");
                }
                Err(e)
            }
        }
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

    async fn prepare_root(&self) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt;
        // 0711: container processes run as mapped uids and must traverse to their bundle.
        for dir in [self.layout.root().to_path_buf(), self.layout.containers(), self.layout.state_root()] {
            tokio::fs::create_dir_all(&dir).await.map_err(Error::io(&dir))?;
            tokio::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).await.map_err(Error::io(&dir))?;
        }
        Ok(())
    }

    async fn create_in(
        &self,
        id: &ContainerId,
        spec: &ContainerSpec,
        config: &oci_spec::runtime::Spec,
    ) -> Result<(), Error> {
        let spec_file = self.layout.spec_file(id);
        let json = serde_json::to_vec_pretty(spec).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        tokio::fs::write(&spec_file, json).await.map_err(Error::io(&spec_file))?;
        let bundle = self.layout.bundle(id);
        tokio::fs::create_dir(&bundle).await.map_err(Error::io(&bundle))?;
        // The seccomp profile goes in compiled, libcontainer gets the spec without it.
        let mut config = config.clone();
        if let Some(linux) = config.linux_mut()
            && let Some(profile) = linux.seccomp().clone()
        {
            let program = self.seccomp.program(&profile).map_err(Error::InvalidSpec)?;
            let path = bundle.join(seccomp_bpf::BPF_FILE);
            tokio::fs::write(&path, &*program).await.map_err(Error::io(&path))?;
            linux.set_seccomp(None);
        }
        let config_file = bundle.join("config.json");
        let json = serde_json::to_vec_pretty(&config).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        tokio::fs::write(&config_file, json).await.map_err(Error::io(&config_file))?;

        let log_path = self.layout.helper_log(id);
        let log = std::fs::File::create(&log_path).map_err(Error::io(&log_path))?;
        let mut child = self
            .helper_command(id, HelperOp::Keep)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            // Its own process group: a Ctrl-C meant for the server does not reach keepers.
            .process_group(0)
            .spawn()
            .map_err(Error::io(&self.helper))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = tokio::time::timeout(CREATE_TIMEOUT, lines.next_line()).await;
        let failure = |message: String| Error::Helper { id: id.clone(), op: "create", message };
        let line = match first {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let _ = child.wait().await;
                let log = tokio::fs::read_to_string(&log_path).await.unwrap_or_default();
                return Err(failure(format!("the helper ended without an answer: {}", log.trim())));
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(failure(format!("no answer within {CREATE_TIMEOUT:?}")));
            }
        };
        let Some(pid) = line.strip_prefix("created ").and_then(|pid| pid.parse::<i32>().ok()) else {
            let _ = child.wait().await;
            return Err(failure(line.strip_prefix("error ").unwrap_or(&line).to_string()));
        };
        let keeper = Keeper { child, control: Some((stdin, lines)) };
        self.keepers.lock().expect("keepers lock").insert(id.clone(), keeper);
        if let Some(net) = &spec.network {
            self.attach_network(id, pid, net).await?;
        }
        Ok(())
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
        let info = self.info(id).await?;
        info.status.apply(id, Action::Start)?;
        let control = self.keepers.lock().expect("keepers lock").get_mut(id).and_then(|k| k.control.take());
        let Some((mut stdin, mut lines)) = control else {
            // A keeper from before a restart: start through a one-off helper.
            self.run_helper(id, HelperOp::Start, "start").await?;
            return self.connect_user_mode(id, &info).await;
        };
        let failure = |message: String| Error::Helper { id: id.clone(), op: "start", message };
        stdin.write_all(b"start\n").await.map_err(|e| failure(e.to_string()))?;
        match lines.next_line().await {
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
        let keeper = self.keepers.lock().expect("keepers lock").remove(id);
        if let Some(mut keeper) = keeper {
            drop(keeper.control.take());
            let _ = keeper.child.wait().await;
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
        let info = self.info(id).await?;
        info.status.apply(id, Action::Kill)?;
        self.run_helper(id, HelperOp::Kill(signal), "kill").await
    }

    /// State, main pid, exit status and resource use of a container.
    pub async fn info(&self, id: &ContainerId) -> Result<ContainerInfo, Error> {
        self.lookup(id).await?.ok_or_else(|| Error::NotFound(id.clone()))
    }

    /// Like `info`, but `None` for a container that does not exist.
    pub async fn lookup(&self, id: &ContainerId) -> Result<Option<ContainerInfo>, Error> {
        let spec_file = self.layout.spec_file(id);
        let spec: ContainerSpec = match tokio::fs::read(&spec_file).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::InvalidSpec(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(spec_file)(e)),
        };
        let exit = self.read_exit(id).await.ok().flatten();
        let runtime_state = read_runtime_state(&self.layout.state_dir(id)).await;
        let alive = runtime_state.as_ref().and_then(|s| s.pid).filter(|&pid| is_alive(pid));
        let status = status_of(exit, runtime_state.as_ref().map(|s| (s.status.as_str(), alive.is_some())));
        let network = spec.network.as_ref().and_then(|_| Network::read_record(&self.layout.network_file(id)));
        let cgroup_path = self.placement.cgroup_path(id);
        let usage = tokio::task::spawn_blocking(move || cgroup::usage(&cgroup_path)).await.unwrap_or_default();
        Ok(Some(ContainerInfo { id: id.clone(), status, pid: alive, exit, usage, spec, network }))
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
        let mut problems = Vec::new();
        // Done here rather than by libcontainer's delete in a helper (one exec of this
        // binary less per container): the init dies, and with it every process of its pid
        // namespace; then whatever sits in the cgroup (a create that failed half-way).
        self.kill_init(id).await;
        let cgroup_path = self.placement.cgroup_path(id);
        let leftover = cgroup_path.clone();
        let _ = tokio::task::spawn_blocking(move || kill_cgroup_processes(&leftover)).await;
        self.reap_keeper(id).await;
        crate::exec::end_process_keepers(&self.layout, id).await;
        let failed = tokio::task::spawn_blocking(move || cgroup::sweep(&cgroup_path)).await.unwrap_or_default();
        for (dir, e) in failed {
            problems.push(format!("cgroup {}: {e}", dir.display()));
        }
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
        match tokio::task::spawn_blocking(detach).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(e.to_string()),
            Err(e) => problems.push(format!("network: {e}")),
        }
        for dir in [self.layout.state_dir(id), self.layout.container_dir(id)] {
            match tokio::fs::remove_dir_all(&dir).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => problems.push(format!("{}: {e}", dir.display())),
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Helper { id: id.clone(), op: "destroy", message: problems.join("; ") })
        }
    }

    /// SIGKILLs the container's init, the pid libcontainer recorded, but only while its
    /// keeper runs: the keeper is the init's parent and reaps it, so until the keeper is
    /// gone that pid cannot belong to another process.
    async fn kill_init(&self, id: &ContainerId) {
        let Some(pid) = read_runtime_state(&self.layout.state_dir(id)).await.and_then(|s| s.pid) else { return };
        let ours =
            self.keepers.lock().expect("keepers lock").get_mut(id).map(|k| matches!(k.child.try_wait(), Ok(None)));
        let keeper_runs = match ours {
            Some(running) => running,
            None => self.keeper_pid(id).await.is_some(),
        };
        if keeper_runs && pid > 0 {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Waits for the container's keeper to end (it ends once the main process is gone).
    async fn reap_keeper(&self, id: &ContainerId) {
        let keeper = self.keepers.lock().expect("keepers lock").remove(id);
        if let Some(mut keeper) = keeper {
            drop(keeper.control.take());
            if tokio::time::timeout(KEEPER_EXIT_TIMEOUT, keeper.child.wait()).await.is_err() {
                let _ = keeper.child.kill().await;
            }
            return;
        }
        // A keeper from before a restart is not our child: watch its pid instead.
        let deadline = tokio::time::Instant::now() + KEEPER_EXIT_TIMEOUT;
        while let Some(pid) = self.keeper_pid(id).await {
            if tokio::time::Instant::now() > deadline {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The pid of the container's keeper, if that process still runs.
    async fn keeper_pid(&self, id: &ContainerId) -> Option<i32> {
        let pid: i32 = tokio::fs::read_to_string(self.layout.keeper_pid(id)).await.ok()?.trim().parse().ok()?;
        let cmdline = tokio::fs::read(format!("/proc/{pid}/cmdline")).await.ok()?;
        let ours = cmdline.split(|&b| b == 0).any(|arg| arg == SUBCOMMAND.as_bytes())
            && cmdline.split(|&b| b == 0).any(|arg| arg == id.as_str().as_bytes());
        (ours && is_alive(pid)).then_some(pid)
    }

    /// `hearth container-helper OP ROOT ID …` for `op` on container `id`. The helper's
    /// allocator gets no transparent huge pages: its first allocation would otherwise zero
    /// a 2 MiB page, and libcontainer's forks of the helper copy it on write (measured: a
    /// bare helper run 2.98 → 2.39 ms; a container 14.6 → 13.3 ms median).
    pub(crate) fn helper_command(&self, id: &ContainerId, op: HelperOp) -> Command {
        let call = HelperCall { op, root: self.layout.root().to_path_buf(), id: id.clone() };
        let mut command = Command::new(&self.helper);
        command.arg(SUBCOMMAND).args(call.to_args()).env("MIMALLOC_ALLOW_THP", "0");
        command
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

/// The rootfs must be a directory the container's mapped root can reach: it is mounted
/// from inside the user namespace, where host root's directories count as "others".
async fn check_rootfs(rootfs: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let refuse = |why: String| Err(Error::InvalidSpec(format!("rootfs {}: {why}", rootfs.display())));
    match tokio::fs::metadata(rootfs).await {
        Ok(m) if m.is_dir() => {}
        _ => return refuse("not a directory".into()),
    }
    for dir in rootfs.ancestors() {
        let mode = tokio::fs::metadata(dir).await.map_err(Error::io(dir))?.permissions().mode();
        if mode & 0o001 == 0 {
            return refuse(format!("{} is not searchable by others (needs o+x, e.g. 0711)", dir.display()));
        }
    }
    Ok(())
}

/// The part of libcontainer's `state.json` this side reads.
#[derive(Deserialize)]
struct RuntimeState {
    status: String,
    pid: Option<i32>,
}

async fn read_runtime_state(dir: &Path) -> Option<RuntimeState> {
    let bytes = tokio::fs::read(dir.join("state.json")).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A container's status from what is on disk: the keeper's exit record, and
/// libcontainer's recorded status with whether its init process still lives.
fn status_of(exit: Option<ExitStatus>, runtime: Option<(&str, bool)>) -> Status {
    match (exit, runtime) {
        (Some(_), _) | (None, None) => Status::Stopped,
        (None, Some((_, false))) => Status::Stopped,
        (None, Some(("creating" | "created", true))) => Status::Created,
        (None, Some((_, true))) => Status::Running,
    }
}

/// Alive and not a zombie.
pub(crate) fn is_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised command name, which may itself hold spaces.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|s| s != "Z" && s != "X")
}

fn kill_cgroup_processes(path: &Path) {
    for dir in cgroup::dirs(path) {
        let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else { continue };
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_comes_from_the_exit_record_first_then_the_live_init() {
        assert_eq!(status_of(Some(ExitStatus::Code(0)), Some(("running", true))), Status::Stopped);
        assert_eq!(status_of(None, None), Status::Stopped);
        assert_eq!(status_of(None, Some(("created", true))), Status::Created);
        assert_eq!(status_of(None, Some(("running", true))), Status::Running);
        assert_eq!(status_of(None, Some(("running", false))), Status::Stopped);
    }

    #[test]
    fn this_process_is_alive_and_pid_zero_is_not() {
        assert!(is_alive(std::process::id() as i32));
        assert!(!is_alive(0));
    }
}

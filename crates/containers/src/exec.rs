//! `Runtime::exec` and `Runtime::attach`: the async side of exec'd processes. It writes
//! the process's OCI `process.json` (with the container's security floor), spawns its
//! keeper (`hearth container-helper exec`, see `helper_exec`) and hands back a
//! [`Process`]. Destroying a container ends its processes' keepers
//! ([`end_process_keepers`]).

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use oci_spec::runtime::{
    Box as ConsoleBox, Capabilities, LinuxCapabilitiesBuilder, Process as OciProcess, ProcessBuilder, UserBuilder,
};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::error::Error;
use crate::helper::HelperOp;
use crate::id::ContainerId;
use crate::layout::Layout;
use crate::oci::CAPABILITIES;
use crate::process::{OutputStream, Process, ProcessId, ProcessSpec, keeper_pid};
use crate::runtime::Runtime;
use crate::spec::ContainerSpec;
use crate::state::Action;

/// How long a keeper may take to start its process.
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

impl Runtime {
    /// Runs another process in a running container, with the container's security floor
    /// (user namespace, capabilities as for its main process, seccomp, no_new_privileges,
    /// cgroup). The returned [`Process`] has its output streams, stdin (if asked for),
    /// signals, resize and wait.
    pub async fn exec(&self, id: &ContainerId, spec: ProcessSpec) -> Result<Process, Error> {
        let info = self.info(id).await?;
        info.status.apply(id, Action::Exec)?;
        let process_id = spec.id.clone().unwrap_or_else(ProcessId::generate);
        let oci = oci_process(&info.spec, &spec, self.placement.id_map.container_ids())?;

        let processes = self.layout.processes(id);
        tokio::fs::create_dir_all(&processes).await.map_err(Error::io(&processes))?;
        let dir = self.layout.process_dir(id, &process_id);
        match tokio::fs::create_dir(&dir).await {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::ProcessExists { id: id.clone(), process: process_id.to_string() });
            }
            other => other.map_err(Error::io(&dir))?,
        }
        match self.spawn_keeper(id, &process_id, &oci, spec.stdin).await {
            Ok(process) => Ok(process),
            Err(e) => {
                // Nothing of a process that never started stays behind.
                let _ = tokio::fs::remove_dir_all(&dir).await;
                Err(e)
            }
        }
    }

    async fn spawn_keeper(
        &self,
        id: &ContainerId,
        process_id: &ProcessId,
        oci: &OciProcess,
        stdin: bool,
    ) -> Result<Process, Error> {
        let dir = self.layout.process_dir(id, process_id);
        let json = serde_json::to_vec_pretty(oci).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        let process_file = dir.join("process.json");
        tokio::fs::write(&process_file, json).await.map_err(Error::io(&process_file))?;
        let control = dir.join("control");
        make_fifo(&control).map_err(Error::io(&control))?;
        let log_path = dir.join("helper.log");
        let log = std::fs::File::create(&log_path).map_err(Error::io(&log_path))?;

        let mut child = self
            .helper_command(id, HelperOp::Exec(process_id.clone()))
            // A pipe tells the keeper the process wants stdin; /dev/null that it does not.
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(log)
            // Its own process group: it outlives the server like the container's keeper.
            .process_group(0)
            .spawn()
            .map_err(Error::io(&self.helper))?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let failure = |message: String| Error::Helper { id: id.clone(), op: "exec", message };
        let line = match tokio::time::timeout(EXEC_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None) | Err(_)) => {
                let _ = child.wait().await;
                let log = tokio::fs::read_to_string(&log_path).await.unwrap_or_default();
                return Err(failure(format!("the keeper ended without an answer: {}", log.trim())));
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(failure(format!("no answer within {EXEC_TIMEOUT:?}")));
            }
        };
        let Some(host_pid) = line.strip_prefix("started ").and_then(|pid| pid.parse::<i32>().ok()) else {
            let _ = child.wait().await;
            return Err(failure(line.strip_prefix("error ").unwrap_or(&line).to_string()));
        };
        let stdin = child.stdin.take();
        Ok(Process {
            id: process_id.clone(),
            container: id.clone(),
            host_pid: Some(host_pid),
            stdin,
            stdout: Some(OutputStream::tail(dir.clone(), "stdout", process_id.clone())),
            stderr: Some(OutputStream::tail(dir.clone(), "stderr", process_id.clone())),
            keeper: Some(child),
            dir,
        })
    }

    /// A process started earlier, possibly by a server before a restart: its output
    /// streams from the first byte, its signals, resize and exit status. Its stdin is not
    /// available (it belonged to the server that started it).
    pub async fn attach(&self, id: &ContainerId, process: &ProcessId) -> Result<Process, Error> {
        self.info(id).await?;
        let dir = self.layout.process_dir(id, process);
        if !tokio::fs::try_exists(dir.join("process.json")).await.unwrap_or(false) {
            return Err(Error::ProcessNotFound { id: id.clone(), process: process.to_string() });
        }
        Ok(Process {
            id: process.clone(),
            container: id.clone(),
            host_pid: None,
            stdin: None,
            stdout: Some(OutputStream::tail(dir.clone(), "stdout", process.clone())),
            stderr: Some(OutputStream::tail(dir.clone(), "stderr", process.clone())),
            keeper: None,
            dir,
        })
    }

    /// The ids of the container's exec'd processes (running or ended).
    pub async fn processes(&self, id: &ContainerId) -> Result<Vec<ProcessId>, Error> {
        self.info(id).await?;
        let dir = self.layout.processes(id);
        let mut ids: Vec<ProcessId> = match std::fs::read_dir(&dir) {
            Ok(entries) => {
                entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| ProcessId::new(n).ok())).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(dir)(e)),
        };
        ids.sort();
        Ok(ids)
    }
}

/// Makes the FIFO a keeper reads control lines from (`signal N`, `resize COLS ROWS`).
fn make_fifo(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: c_path is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// The OCI process for an exec: the request on top of the container's spec, with the
/// same floor as the main process (capabilities effective only for root, no new
/// privileges). libcontainer takes it as is (`with_process`).
fn oci_process(container: &ContainerSpec, spec: &ProcessSpec, id_range: u32) -> Result<OciProcess, Error> {
    let refuse = |why: String| Err(Error::InvalidSpec(why));
    if spec.args.is_empty() || spec.args[0].is_empty() {
        return refuse("args must name a program".into());
    }
    if let Some(bad) = spec.env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
        return refuse(format!("env entry {bad:?} must be NAME=value"));
    }
    let cwd = spec.cwd.clone().unwrap_or_else(|| container.cwd.clone());
    let clean = std::path::Path::new(&cwd)
        .components()
        .all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_)));
    if !cwd.starts_with('/') || !clean {
        return refuse(format!("cwd {cwd:?} must be an absolute path without '..'"));
    }
    let user = spec.user.unwrap_or(container.user);
    if user.uid >= id_range || user.gid >= id_range {
        return refuse(format!("user {}:{} is outside the {id_range} mapped ids", user.uid, user.gid));
    }
    if spec.tty.is_some_and(|s| s.cols == 0 || s.rows == 0) {
        return refuse("a terminal needs at least one row and one column".into());
    }
    // The container's environment, with the process's entries replacing same-named ones.
    let names: HashSet<&str> = spec.env.iter().filter_map(|e| e.split_once('=').map(|(n, _)| n)).collect();
    let mut env: Vec<String> =
        container.env.iter().filter(|e| e.split_once('=').is_none_or(|(n, _)| !names.contains(n))).cloned().collect();
    env.extend(spec.env.iter().cloned());

    let invalid = |e: oci_spec::OciSpecError| Error::InvalidSpec(e.to_string());
    let all: Capabilities = CAPABILITIES.into_iter().collect();
    let effective: Capabilities = if user.uid == 0 { all.clone() } else { HashSet::new() };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(all)
        .effective(effective.clone())
        .permitted(effective)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(invalid)?;
    let oci_user =
        UserBuilder::default().uid(user.uid).gid(user.gid).umask(container.umask).build().map_err(invalid)?;
    let mut process = ProcessBuilder::default()
        .terminal(spec.tty.is_some())
        .user(oci_user)
        .args(spec.args.clone())
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(true);
    if let Some(size) = spec.tty {
        let size = oci_spec::runtime::BoxBuilder::default()
            .width(u32::from(size.cols))
            .height(u32::from(size.rows))
            .build()
            .map_err(invalid)?;
        process = process.console_size::<ConsoleBox>(size);
    }
    process.build().map_err(invalid)
}

/// Ends the keepers of a container's exec'd processes: called by destroy after every
/// process in the container was killed, so each keeper records its process's end and
/// exits; one that does not within the timeout is killed.
pub(crate) async fn end_process_keepers(layout: &Layout, id: &ContainerId) {
    let dir = layout.processes(id);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    let deadline = tokio::time::Instant::now() + crate::keeper::EXIT_TIMEOUT;
    for entry in entries.flatten() {
        let Some(process) = entry.file_name().to_str().and_then(|n| ProcessId::new(n).ok()) else { continue };
        while let Some(pid) = keeper_pid(&entry.path(), &process) {
            if tokio::time::Instant::now() > deadline {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::WindowSize;
    use crate::spec::User;

    #[test]
    fn an_exec_gets_the_floor_and_the_container_defaults() {
        let mut container = ContainerSpec::new("/rootfs", vec!["/bin/sleep".into(), "60".into()]);
        container.env.push("A=container".into());
        container.cwd = "/home/vcap".into();
        let mut spec = ProcessSpec::new(vec!["/bin/env".into()]);
        spec.env = vec!["A=process".into(), "B=2".into()];
        spec.tty = Some(WindowSize { cols: 100, rows: 30 });
        let p = oci_process(&container, &spec, 65536).unwrap();
        assert_eq!(p.env().as_ref().unwrap(), &["PATH=/usr/local/bin:/usr/bin:/bin", "A=process", "B=2"]);
        assert_eq!(p.cwd().to_str(), Some("/home/vcap"));
        assert_eq!((p.user().uid(), p.user().gid()), (2000, 2000));
        assert_eq!(p.no_new_privileges(), Some(true));
        let caps = p.capabilities().as_ref().unwrap();
        assert!(caps.effective().as_ref().unwrap().is_empty() && caps.permitted().as_ref().unwrap().is_empty());
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert_eq!(p.terminal(), Some(true));
        let size = p.console_size().unwrap();
        assert_eq!((size.width(), size.height()), (100, 30));

        spec.user = Some(User { uid: 0, gid: 0 });
        let root = oci_process(&container, &spec, 65536).unwrap();
        assert_eq!(root.capabilities().as_ref().unwrap().effective().as_ref().unwrap().len(), 14);
    }

    #[test]
    fn bad_process_specs_are_refused() {
        let container = ContainerSpec::new("/rootfs", vec!["/bin/sleep".into()]);
        let with = |f: &dyn Fn(&mut ProcessSpec)| {
            let mut spec = ProcessSpec::new(vec!["/bin/true".into()]);
            f(&mut spec);
            oci_process(&container, &spec, 65536)
        };
        assert!(with(&|s| s.args.clear()).is_err());
        assert!(with(&|s| s.env = vec!["NOEQUALS".into()]).is_err());
        assert!(with(&|s| s.cwd = Some("relative".into())).is_err());
        assert!(with(&|s| s.cwd = Some("/a/../b".into())).is_err());
        assert!(with(&|s| s.user = Some(User { uid: 70000, gid: 0 })).is_err());
        assert!(with(&|s| s.tty = Some(WindowSize { cols: 0, rows: 24 })).is_err());
        assert!(with(&|_| {}).is_ok());
    }
}

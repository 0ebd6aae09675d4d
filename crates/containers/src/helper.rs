//! The helper process: the only code that drives libcontainer. libcontainer forks and
//! clones, which is only safe in a single-threaded process, so the async `Runtime` runs
//! `hearth container-helper OP ROOT ID [ARG]` (no tokio runtime in it) for each operation.
//!
//! `keep` creates the container and then stays as its keeper, like Garden's `dadoo`: the
//! container's init is its child, so it alone can `waitpid` for the exit status, which it
//! writes to `exit.json`. Protocol on its stdio: it prints `created PID` (or
//! `error MESSAGE`) once the container exists; a line `start` on stdin starts it and is
//! answered `started` (or `error MESSAGE`); end of stdin lets it just wait; once the exit
//! status is on file it prints `exited STATUS` (as `exit.json` holds it) and ends.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use oci_spec::runtime::Spec;

use crate::id::ContainerId;
use crate::layout::Layout;
use crate::process::ProcessId;
use crate::spec::User;
use crate::state::ExitStatus;

/// The name of the hidden subcommand the binary routes to [`main`].
pub const SUBCOMMAND: &str = "container-helper";

/// One helper invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelperOp {
    /// Create the container and keep it: wait for its main process, record its exit.
    Keep,
    /// Start a created container whose keeper's stdin is gone (after a server restart).
    Start,
    /// Send a signal to the main process.
    Kill(i32),
    /// Kill everything in the container and remove its cgroup and libcontainer state.
    Delete,
    /// Start an exec'd process (described in its `process.json`) and keep it
    /// (`helper_exec`).
    Exec(ProcessId),
    /// Unpack a tar from stdin into a directory inside the container (`helper_stream`).
    StreamIn { dest: String, owner: User },
    /// Write a tar of a file or directory inside the container to stdout.
    StreamOut { path: String },
}

/// A helper invocation with where it acts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelperCall {
    pub op: HelperOp,
    pub root: PathBuf,
    pub id: ContainerId,
}

impl HelperCall {
    /// The arguments after the subcommand name.
    pub fn to_args(&self) -> Vec<OsString> {
        let op = match self.op {
            HelperOp::Keep => "keep",
            HelperOp::Start => "start",
            HelperOp::Kill(_) => "kill",
            HelperOp::Delete => "delete",
            HelperOp::Exec(_) => "exec",
            HelperOp::StreamIn { .. } => "stream-in",
            HelperOp::StreamOut { .. } => "stream-out",
        };
        let mut args = vec![op.into(), self.root.clone().into_os_string(), self.id.as_str().into()];
        match &self.op {
            HelperOp::Keep | HelperOp::Start | HelperOp::Delete => {}
            HelperOp::Kill(signal) => args.push(signal.to_string().into()),
            HelperOp::Exec(process) => args.push(process.as_str().into()),
            HelperOp::StreamIn { dest, owner } => {
                args.push(dest.into());
                args.push(format!("{}:{}", owner.uid, owner.gid).into());
            }
            HelperOp::StreamOut { path } => args.push(path.into()),
        }
        args
    }

    pub fn parse(args: &[OsString]) -> Result<Self, String> {
        let usage = || {
            "usage: container-helper keep|start|delete ROOT ID | kill ROOT ID SIGNAL | exec ROOT ID PROCESS \
             | stream-in ROOT ID DEST UID:GID | stream-out ROOT ID PATH | zygote ROOT"
                .to_string()
        };
        let [op, root, id, rest @ ..] = args else { return Err(usage()) };
        let id = ContainerId::new(id.to_string_lossy()).map_err(|e| e.to_string())?;
        let root = PathBuf::from(root);
        let op = match (op.to_str(), rest) {
            (Some("keep"), []) => HelperOp::Keep,
            (Some("start"), []) => HelperOp::Start,
            (Some("delete"), []) => HelperOp::Delete,
            (Some("kill"), [signal]) => HelperOp::Kill(signal.to_str().and_then(|s| s.parse().ok()).ok_or_else(usage)?),
            (Some("exec"), [process]) => {
                HelperOp::Exec(ProcessId::new(process.to_string_lossy()).map_err(|e| e.to_string())?)
            }
            (Some("stream-in"), [dest, owner]) => {
                let owner = owner
                    .to_str()
                    .and_then(|o| o.split_once(':'))
                    .and_then(|(u, g)| Some(User { uid: u.parse().ok()?, gid: g.parse().ok()? }));
                HelperOp::StreamIn { dest: dest.to_str().ok_or_else(usage)?.into(), owner: owner.ok_or_else(usage)? }
            }
            (Some("stream-out"), [path]) => HelperOp::StreamOut { path: path.to_str().ok_or_else(usage)?.into() },
            _ => return Err(usage()),
        };
        Ok(Self { op, root, id })
    }
}

/// Entry point of `hearth container-helper ...`. Must run before any thread is started.
pub fn main(args: &[OsString]) -> ExitCode {
    match args {
        [op, root] if op == "zygote" => return crate::zygote::serve(Path::new(root)),
        _ => {}
    }
    let call = match HelperCall::parse(args) {
        Ok(call) => call,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let layout = Layout::new(&call.root);
    let result = match call.op {
        HelperOp::Keep => return keep(&layout, &call.id),
        HelperOp::Start => load(&layout, &call.id).and_then(|mut c| c.start().map_err(|e| error_chain(&e))),
        HelperOp::Kill(signal) => kill(&layout, &call.id, signal),
        HelperOp::Delete => delete(&layout, &call.id),
        HelperOp::Exec(process) => return crate::helper_exec::keep_process(&layout, &call.id, &process),
        HelperOp::StreamIn { dest, owner } => crate::helper_stream::stream_in(&layout, &call.id, &dest, owner),
        HelperOp::StreamOut { path } => crate::helper_stream::stream_out(&layout, &call.id, &path),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn load(layout: &Layout, id: &ContainerId) -> Result<Container, String> {
    Container::load(layout.state_dir(id)).map_err(|e| format!("cannot load container {id}: {}", error_chain(&e)))
}

fn kill(layout: &Layout, id: &ContainerId, signal: i32) -> Result<(), String> {
    let signal = Signal::try_from(signal).map_err(|e| format!("signal {signal}: {e}"))?;
    load(layout, id)?.kill(signal, false).map_err(|e| error_chain(&e))
}

fn delete(layout: &Layout, id: &ContainerId) -> Result<(), String> {
    if !layout.state_dir(id).join("state.json").exists() {
        return Ok(());
    }
    load(layout, id)?.delete(true).map_err(|e| error_chain(&e))
}

/// Creates the container, then waits for its main process (see the module doc).
pub(crate) fn keep(layout: &Layout, id: &ContainerId) -> ExitCode {
    // Nothing is written to stdout before libcontainer has forked.
    let created = create(layout, id);
    let mut out = std::io::stdout().lock();
    let (mut container, pid) = match created {
        Ok(c) => match c.pid() {
            Some(pid) => (c, pid),
            None => {
                let _ = writeln!(out, "error the container has no init process");
                return ExitCode::FAILURE;
            }
        },
        Err(message) => {
            let _ = writeln!(out, "error {}", one_line(&message));
            return ExitCode::FAILURE;
        }
    };
    let _ = writeln!(out, "created {pid}");
    let _ = out.flush();
    serve_until_exit(&mut container, pid, &mut out);

    let status = loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => break ExitStatus::Code(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => break ExitStatus::Signal(signal as i32),
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => {
                eprintln!("waitpid {pid}: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    match write_exit(&layout.exit_file(id), status) {
        Ok(()) => {
            // The server may be gone; then nobody needs to hear it.
            // With the status, so the server need not read the file back.
            let said = serde_json::to_string(&status).unwrap_or_default();
            let _ = writeln!(out, "{} {said}", crate::keeper::EXITED).and_then(|()| out.flush());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot record the exit status: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Answers `start` requests on stdin until the init process exits. Without the server
/// (stdin closed) it just watches the init, which a one-off `start` helper may start.
fn serve_until_exit(container: &mut Container, pid: nix::unistd::Pid, out: &mut impl Write) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) } as libc::c_int;
    if pidfd < 0 {
        return; // No pidfd (kernel < 5.3): waitpid alone, no start requests.
    }
    let mut stdin_open = true;
    let mut line = String::new();
    loop {
        let mut fds = [
            libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if stdin_open { 0 } else { -1 }, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: fds is a valid array of two pollfds for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if fds[0].revents != 0 {
            break;
        }
        if fds[1].revents != 0 {
            line.clear();
            match std::io::stdin().lock().read_line(&mut line) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(_) if line.trim() == "start" => {
                    let reply = match container.start() {
                        Ok(()) => "started".to_string(),
                        Err(e) => format!("error {}", one_line(&e.to_string())),
                    };
                    // The server may be gone; the keeper's job (waiting) goes on regardless.
                    let _ = writeln!(out, "{reply}");
                    let _ = out.flush();
                }
                Ok(_) => {}
            }
        }
    }
    // SAFETY: pidfd is an fd this function opened and nothing else uses.
    unsafe { libc::close(pidfd) };
}

fn create(layout: &Layout, id: &ContainerId) -> Result<Container, String> {
    let open_out = |path: &Path| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let stdin = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    let stdout = open_out(&layout.stdout(id))?;
    let stderr = open_out(&layout.stderr(id))?;
    crate::keeper::record(&layout.keeper_pid(id))?;
    std::fs::create_dir_all(layout.state_root()).map_err(|e| format!("{}: {e}", layout.state_root().display()))?;
    let filter = crate::seccomp_bpf::of_bundle(&layout.bundle(id))?;
    ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(RestoreSignalsExecutor { init: wants_init(layout, id), filter })
        .with_stdin(stdin)
        .with_stdout(stdout)
        .with_stderr(stderr)
        .with_root_path(layout.state_root())
        .and_then(|b| b.validate_id())
        .and_then(|b| b.as_init(layout.bundle(id)).with_systemd(false).with_detach(true).build())
        .map_err(|e| error_chain(&e))
}

/// Runs the workload like libcontainer's default executor, after giving SIGPIPE back its
/// default action (the Rust runtime of this helper ignores it, and an ignored signal
/// stays ignored across `execve`, which would break `producer | head` in containers) and
/// loading the compiled seccomp filter, where libcontainer would have loaded the profile.
#[derive(Clone)]
struct RestoreSignalsExecutor {
    /// Fork: the main process runs as the child of a minimal init (`init`).
    init: bool,
    filter: Option<Vec<u8>>,
}

/// Whether the container's spec asks for an init (a spec that cannot be read asks for none).
fn wants_init(layout: &Layout, id: &ContainerId) -> bool {
    std::fs::read(layout.spec_file(id))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<crate::ContainerSpec>(&bytes).ok())
        .is_some_and(|spec| spec.init)
}

impl Executor for RestoreSignalsExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        // SAFETY: resetting a signal disposition to SIG_DFL in a single-threaded process
        // right before execve.
        unsafe {
            nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl)
                .map_err(|e| ExecutorError::Other(format!("restore SIGPIPE: {e}")))?;
        }
        if let Some(program) = &self.filter {
            crate::seccomp_bpf::load(program).map_err(ExecutorError::Other)?;
        }
        if self.init {
            let spec = crate::init::with_start_env(spec);
            return crate::init::run(|| DefaultExecutor {}.exec(&spec));
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

pub(crate) fn write_exit(path: &Path, status: ExitStatus) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&status)?)?;
    std::fs::rename(tmp, path)
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

pub(crate) fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_round_trip_through_arguments() {
        let id = ContainerId::new("web-0").unwrap();
        for op in [
            HelperOp::Keep,
            HelperOp::Start,
            HelperOp::Kill(15),
            HelperOp::Delete,
            HelperOp::Exec(ProcessId::new("p-1").unwrap()),
            HelperOp::StreamIn { dest: "/home/vcap/app".into(), owner: User { uid: 2000, gid: 2000 } },
            HelperOp::StreamOut { path: "/tmp/droplet".into() },
        ] {
            let call = HelperCall { op, root: "/var/lib/hearth/containers".into(), id: id.clone() };
            assert_eq!(HelperCall::parse(&call.to_args()).unwrap(), call);
        }
    }

    #[test]
    fn bad_calls_are_refused() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        for bad in [
            &["keep"][..],
            &["keep", "/r", "../x"],
            &["kill", "/r", "c"],
            &["kill", "/r", "c", "TERM"],
            &["run", "/r", "c"],
            &["exec", "/r", "c"],
            &["exec", "/r", "c", "../p"],
            &["stream-in", "/r", "c", "/app"],
            &["stream-in", "/r", "c", "/app", "2000"],
            &["stream-out", "/r", "c"],
        ] {
            assert!(HelperCall::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}

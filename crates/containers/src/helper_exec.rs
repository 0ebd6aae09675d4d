//! The keeper of one exec'd process (`hearth container-helper exec ROOT ID PROCESS`),
//! single-threaded like every helper. It joins the process to the running container with
//! libcontainer's tenant builder, then stays as the process's parent until it exits and
//! records how in `exit.json`.
//!
//! libcontainer 0.7's tenant builder (its `exec`) joins the container's namespaces
//! except the user namespace, and keeps only namespaces and the cgroup path of the
//! container's `linux` section: left alone, an exec'd process would run with host ids
//! (container root as host root) and without the container's seccomp profile. So the
//! keeper asks libcontainer for a process that is host root holding only
//! `CAP_SYS_ADMIN` and `CAP_CHOWN` (`tenant.json`), and its executor, in that process right before
//! `execve`, joins the container's user namespace (through an fd the keeper opened),
//! becomes the requested user with the capabilities of `process.json` (bounding set
//! included), sets `HOME`, and installs the container's seccomp profile last (after
//! no_new_privileges, which libcontainer set). Under a TTY the executor first sets the
//! requested window size on the new terminal and gives it to the user.
//!
//! Protocol: fd 0 is the process's stdin when it is a pipe (otherwise the process gets
//! `/dev/null`); the keeper prints `started HOST_PID` or `error MESSAGE` on stdout once.
//! Later requests come as lines on the `control` FIFO: `signal N`, `resize COLS ROWS`.
//! Without a TTY the process writes straight into the `stdout` and `stderr` files; with
//! one, the keeper copies the terminal's output into `stdout` and stdin into the terminal
//! (end of stdin becomes the terminal's end-of-file character, ^D).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::ExitCode;

use libcontainer::capabilities::drop_privileges;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::syscall::syscall::create_syscall;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCapabilitiesBuilder, LinuxSeccomp, Process, Spec, UserBuilder,
};

use crate::helper::{error_chain, load, one_line, write_exit};
use crate::helper_stream::IdMaps;
use crate::id::ContainerId;
use crate::layout::Layout;
use crate::process::ProcessId;
use crate::state::ExitStatus;

const CONSOLE_SOCKET: &str = "console.sock";
/// The terminal's end-of-file character (VEOF's default).
const EOF_CHAR: u8 = 0x04;

/// Starts and keeps one exec'd process (see the module doc).
pub(crate) fn keep_process(layout: &Layout, id: &ContainerId, process: &ProcessId) -> ExitCode {
    let dir = layout.process_dir(id, process);
    // Opened read-write, the FIFO never reports end of file when a writer leaves; opened
    // before `started` is answered, so a signal sent right after finds a reader.
    let control = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(dir.join("control"));
    // Nothing is written to stdout before libcontainer has forked.
    let started = control.map_err(|e| format!("control: {e}")).and_then(|c| Ok((c, start(layout, id, &dir)?)));
    let mut out = std::io::stdout().lock();
    let (control, (pid, master)) = match started {
        Ok(started) => started,
        Err(message) => {
            let _ = writeln!(out, "error {}", one_line(&message));
            return ExitCode::FAILURE;
        }
    };
    let _ = writeln!(out, "started {pid}");
    let _ = out.flush();
    drop(out);
    // The server may go away: nothing more goes to its pipe.
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1 of this single-threaded process.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
    let status = match watch(pid, master, control, &dir) {
        Ok(status) => status,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    match write_exit(&dir.join("exit.json"), status) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot record the exit status: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open_out(path: &Path) -> Result<File, String> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Joins the process to the container; returns its host pid and, under a TTY, the
/// terminal's master side.
fn start(layout: &Layout, id: &ContainerId, dir: &Path) -> Result<(Pid, Option<OwnedFd>), String> {
    crate::keeper::record(&dir.join("keeper.pid"))?;
    let process_file = dir.join("process.json");
    let bytes = std::fs::read(&process_file).map_err(|e| format!("{}: {e}", process_file.display()))?;
    let process: Process = serde_json::from_slice(&bytes).map_err(|e| format!("process.json: {e}"))?;
    let config = layout.bundle(id).join("config.json");
    let container = Spec::load(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    let compiled = crate::seccomp_bpf::of_bundle(&layout.bundle(id))?;
    let seccomp = match compiled {
        Some(program) => Seccomp::Compiled(program),
        None => Seccomp::Profile(
            container
                .linux()
                .as_ref()
                .and_then(|l| l.seccomp().clone())
                .ok_or("the container has no seccomp profile to give the process")?,
        ),
    };
    let uid_maps = container.linux().as_ref().and_then(|l| l.uid_mappings().clone()).unwrap_or_default();
    let gid_maps = container.linux().as_ref().and_then(|l| l.gid_mappings().clone()).unwrap_or_default();
    let tty = process.terminal().unwrap_or(false);
    let window = process.console_size().map(|b| (b.width() as u16, b.height() as u16));
    let capabilities = process.capabilities().clone().ok_or("process.json has no capabilities")?;
    let user = (process.user().uid(), process.user().gid());
    let host_user = IdMaps::to_host(&uid_maps, user.0).zip(IdMaps::to_host(&gid_maps, user.1));
    let host_user = host_user.ok_or_else(|| format!("user {}:{} is not mapped in the container", user.0, user.1))?;
    let tenant_file = dir.join("tenant.json");
    let tenant =
        serde_json::to_vec(&host_root_stage(process, !nix::unistd::geteuid().is_root()).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    std::fs::write(&tenant_file, tenant).map_err(|e| format!("{}: {e}", tenant_file.display()))?;
    let init = load(layout, id)?.pid().ok_or_else(|| format!("container {id} has no init process"))?;
    let rootless = !nix::unistd::geteuid().is_root();
    let mut state_root = layout.state_root();
    let userns = if rootless {
        // An ordinary user cannot join the container's other namespaces from outside its
        // user namespace: the keeper joins it first (libcontainer then runs as its root,
        // whose ids are the container's own).
        let target = crate::rootless::inspectable_pid(init.as_raw())?;
        crate::helper_stream::join_user_namespace(target)?;
        if target != init.as_raw() {
            state_root = state_naming(layout, id, dir, target)?;
        }
        None
    } else {
        Some(File::open(format!("/proc/{init}/ns/user")).map_err(|e| format!("user namespace of {init}: {e}"))?)
    };
    let host_user = if rootless { user } else { host_user };
    let stdout = open_out(&dir.join("stdout"))?;
    let stderr = open_out(&dir.join("stderr"))?;

    let executor = ExecExecutor {
        userns: userns.as_ref().map(|f| f.as_raw_fd()),
        user,
        capabilities,
        home_set: process_sets_home(&bytes),
        host_user,
        seccomp,
        window: window.filter(|_| tty),
    };
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(executor)
        .with_root_path(&state_root)
        .map_err(|e| error_chain(&e))?;
    let listener = if tty {
        // Bound by a relative name: the absolute path may exceed a socket address.
        let previous = std::env::current_dir().map_err(|e| e.to_string())?;
        std::env::set_current_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let listener = UnixListener::bind(CONSOLE_SOCKET).map_err(|e| format!("console socket: {e}"));
        std::env::set_current_dir(previous).map_err(|e| e.to_string())?;
        builder = builder.with_console_socket(Some(dir.join(CONSOLE_SOCKET)));
        Some(listener?)
    } else {
        let stdin: OwnedFd = if stdin_is_pipe() {
            std::io::stdin().as_fd().try_clone_to_owned().map_err(|e| format!("stdin: {e}"))?
        } else {
            File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?.into()
        };
        builder = builder.with_stdin(stdin).with_stdout(stdout).with_stderr(stderr);
        None
    };
    let pid = builder
        .validate_id()
        .map_err(|e| error_chain(&e))?
        .as_tenant()
        .with_process(Some(tenant_file))
        .with_detach(true)
        .build()
        .map_err(|e| error_chain(&e));
    let _ = std::fs::remove_file(dir.join(CONSOLE_SOCKET));
    drop(userns);
    let pid = pid?;
    let master = match listener {
        Some(listener) => Some(receive_master(&listener).map_err(|e| format!("terminal: {e}"))?),
        None => None,
    };
    Ok((pid, master))
}

/// libcontainer's tenant builder takes the namespaces to join from the init's
/// `/proc/PID/ns`, which only root may open when the init is Hearth's minimal one (see
/// `rootless::inspectable_pid`): a rootless exec gives it a copy of the container's
/// state naming `target`, a process of the container in the same namespaces. Returns the
/// copy's root (under the process's directory, removed with it).
fn state_naming(layout: &Layout, id: &ContainerId, dir: &Path, target: i32) -> Result<std::path::PathBuf, String> {
    let original = layout.state_dir(id).join("state.json");
    let bytes = std::fs::read(&original).map_err(|e| format!("{}: {e}", original.display()))?;
    let mut state: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| format!("state.json: {e}"))?;
    state["pid"] = serde_json::Value::from(target);
    let root = dir.join("state");
    let copy = root.join(id.as_str());
    std::fs::create_dir_all(&copy).map_err(|e| format!("{}: {e}", copy.display()))?;
    let json = serde_json::to_vec(&state).map_err(|e| e.to_string())?;
    std::fs::write(copy.join("state.json"), json).map_err(|e| format!("{}: {e}", copy.display()))?;
    Ok(root)
}

fn stdin_is_pipe() -> bool {
    // SAFETY: fstat on fd 0 into a zeroed stat buffer.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(0, &mut stat) } == 0) && (stat.st_mode & libc::S_IFMT) == libc::S_IFIFO
}

/// The container side sent the terminal's master over the console socket before it ran
/// the program; the connection waits in the listener's backlog.
fn receive_master(listener: &UnixListener) -> Result<OwnedFd, String> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let (stream, _) = listener.accept().map_err(|e| e.to_string())?;
    let mut name = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| e.to_string())?;
    for cmsg in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just installed this fd in this process for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err("no terminal was sent".into())
}

/// Serves control requests (and, under a TTY, copies between the terminal, stdin and the
/// output file) until the process exits; reaps it.
fn watch(pid: Pid, master: Option<OwnedFd>, mut control: File, dir: &Path) -> Result<ExitStatus, String> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) } as RawFd;
    if pidfd < 0 {
        return Err(format!("pidfd_open: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pidfd was just opened and is owned here.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let mut output = match master {
        Some(_) => Some(open_out(&dir.join("stdout"))?),
        None => None,
    };
    if let Some(m) = &master {
        set_nonblocking(m.as_raw_fd());
    }
    let mut master_open = master.is_some();
    let mut stdin_open = master.is_some() && stdin_is_pipe();
    let mut pending: Vec<u8> = Vec::new();
    let mut requests = String::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let master_fd = master.as_ref().filter(|_| master_open).map_or(-1, |m| m.as_raw_fd());
        let mut master_events = libc::POLLIN;
        if !pending.is_empty() {
            master_events |= libc::POLLOUT;
        }
        let mut fds = [
            libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: control.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: master_fd, events: master_events, revents: 0 },
            // Read stdin only when the terminal took everything before: back pressure.
            libc::pollfd {
                fd: if stdin_open && pending.is_empty() { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of pollfds for the duration of the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        if fds[1].revents != 0 {
            while let Ok(n @ 1..) = control.read(&mut buf) {
                requests.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            while let Some((line, rest)) = requests.split_once('\n') {
                handle_request(line, pid, master.as_ref());
                requests = rest.to_string();
            }
        }
        if fds[2].revents != 0 {
            if fds[2].revents & libc::POLLOUT != 0 {
                // SAFETY: writing from a valid buffer to the master fd.
                let n = unsafe { libc::write(master_fd, pending.as_ptr().cast(), pending.len()) };
                if n > 0 {
                    pending.drain(..n as usize);
                }
            }
            if fds[2].revents & !libc::POLLOUT != 0 && !copy_output(master_fd, &mut buf, output.as_mut()) {
                master_open = false;
            }
        }
        if fds[3].revents != 0 {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    pending.push(EOF_CHAR);
                }
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        if fds[0].revents != 0 {
            break;
        }
    }
    let status = loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => break ExitStatus::Code(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => break ExitStatus::Signal(signal as i32),
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(format!("waitpid {pid}: {e}")),
        }
    };
    // What the process wrote last may still sit in the terminal. Bounded: a background
    // process of the container may hold the terminal and keep writing.
    if let Some(m) = master.as_ref().filter(|_| master_open) {
        for _ in 0..64 {
            if !copy_output(m.as_raw_fd(), &mut buf, output.as_mut()) {
                break;
            }
        }
    }
    Ok(status)
}

/// Copies what the terminal has into the output file; false once nothing more can come
/// now (would block) or ever (the terminal's other side is closed).
fn copy_output(master: RawFd, buf: &mut [u8], output: Option<&mut File>) -> bool {
    // SAFETY: reading into a valid buffer of buf.len() bytes.
    let n = unsafe { libc::read(master, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return false;
    }
    if let Some(out) = output {
        let _ = out.write_all(&buf[..n as usize]);
    }
    true
}

fn handle_request(line: &str, pid: Pid, master: Option<&OwnedFd>) {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["signal", n] => {
            if let Some(signal) = n.parse::<i32>().ok().and_then(|n| Signal::try_from(n).ok()) {
                // The process is not reaped before this loop ends, so its pid is still its own.
                let _ = nix::sys::signal::kill(pid, signal);
            }
        }
        ["resize", cols, rows] => {
            if let (Some(m), Ok(cols), Ok(rows)) = (master, cols.parse::<u16>(), rows.parse::<u16>()) {
                set_window(m.as_raw_fd(), cols, rows);
            }
        }
        _ => eprintln!("unknown control request {line:?}"),
    }
}

fn set_window(fd: RawFd, cols: u16, rows: u16) -> bool {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &size) == 0 }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: F_GETFL/F_SETFL on an fd this process owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// The process libcontainer starts: host root with `CAP_SYS_ADMIN` (to join the
/// container's user namespace, see the module doc) and `CAP_CHOWN` (to give a terminal to
/// the user) alone.
///
/// Rootless, the process starts inside the container's user namespace already (as its
/// root, the user running the runtime): it also keeps what becoming the user takes there
/// (`CAP_SETUID`, `CAP_SETGID`, `CAP_SETPCAP`), which joining the namespace would give.
fn host_root_stage(mut process: Process, rootless: bool) -> Result<Process, oci_spec::OciSpecError> {
    let mut admin: oci_spec::runtime::Capabilities = [Capability::SysAdmin, Capability::Chown].into_iter().collect();
    if rootless {
        admin.extend([Capability::Setuid, Capability::Setgid, Capability::Setpcap]);
    }
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(admin.clone())
        .effective(admin.clone())
        .permitted(admin)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?;
    let user = UserBuilder::default().uid(0u32).gid(0u32).umask(process.user().umask().unwrap_or(0o022)).build()?;
    process.set_user(user).set_capabilities(Some(capabilities));
    Ok(process)
}

fn process_sets_home(process_json: &[u8]) -> bool {
    let process: Option<Process> = serde_json::from_slice(process_json).ok();
    process.and_then(|p| p.env().clone()).is_some_and(|env| env.iter().any(|e| e.starts_with("HOME=")))
}

/// Runs in the new process right before `execve` (see the module doc): window size, the
/// container's user namespace, user and capabilities, `HOME`, SIGPIPE's default action
/// (this helper's Rust runtime ignores it, and an ignored signal stays ignored across
/// `execve`), the container's seccomp profile, then the default executor.
#[derive(Clone)]
struct ExecExecutor {
    /// The container's user namespace, opened by the keeper (close-on-exec); `None` when
    /// the keeper already joined it (rootless).
    userns: Option<RawFd>,
    user: (u32, u32),
    /// The user's ids as this process sees them (host ids, or the container's when it runs
    /// inside the container's user namespace): the owner of its terminal.
    host_user: (u32, u32),
    capabilities: LinuxCapabilities,
    home_set: bool,
    seccomp: Seccomp,
    window: Option<(u16, u16)>,
}

/// The container's filter: compiled (`seccomp_bpf`), or the profile of a bundle from
/// before filters were compiled.
#[derive(Clone)]
enum Seccomp {
    Compiled(Vec<u8>),
    Profile(LinuxSeccomp),
}

impl Executor for ExecExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let fail = |what: &str, e: String| ExecutorError::Other(format!("{what}: {e}"));
        if let Some((cols, rows)) = self.window {
            if !set_window(0, cols, rows) {
                return Err(fail("window size", std::io::Error::last_os_error().to_string()));
            }
            // The terminal was made by host root: it becomes the user's, as a login's is.
            // SAFETY: fchown on fd 0, the terminal libcontainer connected.
            if unsafe { libc::fchown(0, self.host_user.0, self.host_user.1) } != 0 {
                return Err(fail("terminal owner", std::io::Error::last_os_error().to_string()));
            }
        }
        // SAFETY: setns on an fd inherited from the keeper, in a single-threaded process.
        if let Some(userns) = self.userns
            && unsafe { libc::setns(userns, libc::CLONE_NEWUSER) } != 0
        {
            return Err(fail("joining the user namespace", std::io::Error::last_os_error().to_string()));
        }
        let (uid, gid) = self.user;
        let syscall = create_syscall();
        // A rootless container's user namespace has setgroups denied (libcontainer writes
        // "deny" for an unprivileged creator, CVE-2014-8989): the groups stay as the main
        // process's do.
        let setgroups_denied =
            self.userns.is_none() && std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
        if !setgroups_denied {
            syscall.set_groups(&[]).map_err(|e| fail("setgroups", e.to_string()))?;
        }
        syscall.set_id(Uid::from_raw(uid), Gid::from_raw(gid)).map_err(|e| fail("set user", e.to_string()))?;
        drop_privileges(&self.capabilities, syscall.as_ref()).map_err(|e| fail("capabilities", e.to_string()))?;
        if !self.home_set {
            // SAFETY: single-threaded process right before execve.
            unsafe { std::env::set_var("HOME", home_of(uid)) };
        }
        // SAFETY: resetting a signal disposition in a single-threaded process before execve.
        unsafe {
            nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl)
                .map_err(|e| fail("restore SIGPIPE", e.to_string()))?;
        }
        match &self.seccomp {
            Seccomp::Compiled(program) => crate::seccomp_bpf::load(program).map_err(|e| fail("seccomp", e))?,
            Seccomp::Profile(profile) => {
                libcontainer::seccomp::initialize_seccomp(profile).map_err(|e| fail("seccomp", error_chain(&e)))?;
            }
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// The home directory of `uid` in the container's `/etc/passwd` (this runs inside the
/// container's mount namespace and root), or `/`.
fn home_of(uid: u32) -> String {
    // Only a regular file is read: a FIFO planted by the container would block the exec.
    let passwd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/etc/passwd")
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))
        .and_then(|mut f| {
            let mut text = String::new();
            f.read_to_string(&mut text).ok().map(|_| text)
        })
        .unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))
        .map_or_else(|| "/".to_string(), |f| f[5].to_string())
}

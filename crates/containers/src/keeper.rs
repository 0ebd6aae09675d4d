//! Keepers: the helper processes that create a container and then wait for its main
//! process (`helper`'s `keep`), where they come from, and how a keeper is told apart from
//! whatever process later reuses its pid.
//!
//! A keeper is forked by the runtime's zygote (`zygote`), which pays the exec of this large
//! binary once; a keeper is spawned afresh (`container-helper keep ROOT ID`) only where the
//! zygote forked nothing (it is gone, or refused) or the kernel has no pidfds. Either way the server holds its stdin and
//! stdout and a handle to watch, kill and reap it ([`KeeperProcess`]).
//!
//! A keeper records `PID STARTTIME` in its `keeper.pid`. The start time (field 22 of
//! `/proc/PID/stat`) together with the pid names one process for the life of the host, so
//! a forked keeper (whose command line names no container) is recognised as the keeper
//! it is, and a reused pid is not.

use std::io::{IoSlice, IoSliceMut, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, sendmsg, socketpair,
};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, BufReader, Interest, Lines};
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};

use crate::error::Error;
use crate::helper::SUBCOMMAND;
use crate::id::ContainerId;
use crate::state::ExitStatus;

/// The word a keeper request starts with, before the container id.
pub(crate) const KEEP_REQUEST: &str = "keep";

/// A keeper's stdin, which the server writes `start` to.
pub(crate) type KeeperStdin = pipe::Sender;
/// A keeper's output, read line by line.
pub(crate) type KeeperLines = Lines<BufReader<pipe::Receiver>>;

/// A keeper this server started: its process, its stdin until the container is started,
/// and its output lines until it has said `exited` (then `wait` hands it to `reap`).
pub(crate) struct Keeper {
    pub process: KeeperProcess,
    pub stdin: Option<KeeperStdin>,
    pub lines: Option<KeeperLines>,
}

/// How long a keeper may take to end once its main process is gone (or killed).
pub(crate) const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the zygote may take to answer a fork request (it loads first if just started).
const ZYGOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// The line a keeper prints once the exit status is on file, just before it ends:
/// `exited STATUS` (the status as `exit.json` holds it).
pub(crate) const EXITED: &str = "exited";

impl Keeper {
    /// Reads the keeper's output until it says `exited` (then the status it gave, if it
    /// reads as one) or ends (`None`).
    pub async fn until_exited(lines: &mut KeeperLines) -> Option<Option<ExitStatus>> {
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    if let Some(said) = exited(&line) {
                        return Some(said);
                    }
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

/// Whether `line` is the keeper's `exited [STATUS]`, and the status if it gives one.
fn exited(line: &str) -> Option<Option<ExitStatus>> {
    let rest = line.strip_prefix(EXITED)?;
    (rest.is_empty() || rest.starts_with(' ')).then(|| serde_json::from_str(rest.trim_start()).ok())
}

/// A keeper's process: a child of this server, or a child of its zygote watched through a
/// pidfd (the zygote reaps it).
pub(crate) enum KeeperProcess {
    Spawned(Child),
    Forked(AsyncFd<OwnedFd>),
}

impl KeeperProcess {
    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        match self {
            KeeperProcess::Spawned(child) => matches!(child.try_wait(), Ok(None)),
            KeeperProcess::Forked(pidfd) => {
                let mut fds = [libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
                // SAFETY: one valid pollfd, no waiting; a pidfd turns readable once the process ends.
                let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
                ready == 0
            }
        }
    }

    /// Waits for it to end.
    pub async fn wait(&mut self) {
        match self {
            KeeperProcess::Spawned(child) => drop(child.wait().await),
            KeeperProcess::Forked(pidfd) => drop(pidfd.readable().await),
        }
    }

    /// SIGKILLs it and waits for it to end.
    pub async fn kill(&mut self) {
        if let KeeperProcess::Forked(pidfd) = self {
            // SAFETY: a pidfd this handle owns, a valid signal, no siginfo.
            unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), libc::SIGKILL, 0, 0) };
        } else if let KeeperProcess::Spawned(child) = self {
            let _ = child.start_kill();
        }
        self.wait().await;
    }
}

/// Waits for a keeper that said `exited` to end (it only exits by then), killing it if it
/// has not within the keeper timeout.
pub(crate) async fn reap(mut process: KeeperProcess) {
    if tokio::time::timeout(EXIT_TIMEOUT, process.wait()).await.is_err() {
        process.kill().await;
    }
}

/// `hearth container-helper ARGS…`. The helper's allocator gets no transparent huge
/// pages: its first allocation would otherwise zero a 2 MiB page, and libcontainer's
/// forks of the helper copy it on write (measured: a bare helper run 2.98 → 2.39 ms; a
/// container 14.6 → 13.3 ms median).
pub(crate) fn helper_command<I, S>(helper: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(helper);
    command.arg(SUBCOMMAND).args(args).env("MIMALLOC_ALLOW_THP", "0");
    command
}

/// Where a runtime's keepers come from: its zygote, started with the first create.
pub(crate) struct Keepers {
    helper: PathBuf,
    root: PathBuf,
    zygote: tokio::sync::Mutex<Option<Zygote>>,
}

/// A running zygote: its process (killed when this is dropped) and the server's end of
/// its socket.
struct Zygote {
    _process: Child,
    socket: AsyncFd<OwnedFd>,
}

impl Keepers {
    pub fn new(helper: PathBuf, root: PathBuf) -> Self {
        Self { helper, root, zygote: tokio::sync::Mutex::new(None) }
    }

    /// A keeper creating container `id` (whose bundle is written), with its stdin and
    /// output. Its stderr goes to `log`.
    pub async fn keep(&self, id: &ContainerId, log: &Path) -> Result<Keeper, Error> {
        let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(log);
        let file = file.map_err(Error::io(log))?;
        if pidfds_work() {
            match self.fork(id, &file).await {
                Ok(keeper) => return Ok(keeper),
                Err(Asked::NotForked(why) | Asked::Refused(why)) => {
                    tracing::warn!(%id, error = %why, "the zygote did not fork a keeper; spawning one")
                }
                // A keeper may exist without the server holding it: the create fails, and the
                // cleanup after it finds that keeper by its `keeper.pid` and its cgroup.
                Err(Asked::Unknown(why)) => return Err(Error::Helper { id: id.clone(), op: "create", message: why }),
            }
        }
        let args =
            crate::helper::HelperCall { op: crate::helper::HelperOp::Keep, root: self.root.clone(), id: id.clone() }
                .to_args();
        let mut child = helper_command(&self.helper, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(file)
            // Its own process group: a Ctrl-C meant for the server does not reach keepers.
            .process_group(0)
            .spawn()
            .map_err(Error::io(&self.helper))?;
        let io = |e: std::io::Error| Error::Helper { id: id.clone(), op: "create", message: e.to_string() };
        let stdin = child.stdin.take().expect("piped stdin").into_owned_fd().map_err(io)?;
        let stdout = child.stdout.take().expect("piped stdout").into_owned_fd().map_err(io)?;
        Ok(Keeper {
            process: KeeperProcess::Spawned(child),
            stdin: Some(pipe::Sender::from_owned_fd(stdin).map_err(io)?),
            lines: Some(BufReader::new(pipe::Receiver::from_owned_fd(stdout).map_err(io)?).lines()),
        })
    }

    /// Has the zygote (started now if it is not running) fork a keeper for `id`. The zygote
    /// is put back only after a whole exchange: one that failed, or whose create was
    /// cancelled half-way (its answer would go to the next request), is dropped, which
    /// kills it (its keepers, in process groups of their own, go on), and the next create
    /// starts another.
    async fn fork(&self, id: &ContainerId, log: &std::fs::File) -> Result<Keeper, Asked> {
        let mut slot = self.zygote.lock().await;
        let zygote = match slot.take() {
            Some(zygote) => zygote,
            None => self.start_zygote().map_err(Asked::NotForked)?,
        };
        let asked = tokio::time::timeout(ZYGOTE_TIMEOUT, ask(&zygote.socket, id, log)).await;
        let answer = asked
            .unwrap_or_else(|_| Err(Asked::Unknown(format!("the zygote gave no answer within {ZYGOTE_TIMEOUT:?}"))));
        if matches!(answer, Ok(_) | Err(Asked::Refused(_))) {
            *slot = Some(zygote);
        }
        answer
    }

    fn start_zygote(&self) -> Result<Zygote, String> {
        let flags = SockFlag::SOCK_CLOEXEC;
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, flags)
            .map_err(|e| format!("socketpair: {e}"))?;
        let process = helper_command(&self.helper, [std::ffi::OsStr::new("zygote"), self.root.as_os_str()])
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.helper.display()))?;
        let nonblocking = nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(ours.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nonblocking))
            .map_err(|e| format!("fcntl: {e}"))?;
        let socket =
            register(ours, Interest::READABLE | Interest::WRITABLE).map_err(|e| format!("the zygote's socket: {e}"))?;
        Ok(Zygote { _process: process, socket })
    }
}

/// How an exchange with the zygote failed.
#[derive(Debug)]
enum Asked {
    /// The zygote refused the request (and forked nothing); it serves on.
    Refused(String),
    /// No keeper was forked: the request never went out (the zygote is gone).
    NotForked(String),
    /// A keeper may have been forked, and the server does not hold it.
    Unknown(String),
}

/// Whether this kernel has pidfds (5.3 and later), which the server watches forked
/// keepers through. Asked once.
fn pidfds_work() -> bool {
    static WORK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORK.get_or_init(|| {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) } as RawFd;
        // SAFETY: a new descriptor nobody else owns.
        (fd >= 0).then(|| drop(unsafe { OwnedFd::from_raw_fd(fd) })).is_some()
    })
}

/// Watches `fd` with the runtime's reactor.
fn register(fd: OwnedFd, interest: Interest) -> Result<AsyncFd<OwnedFd>, String> {
    // SAFETY: an OwnedFd is open and stays the same descriptor until the AsyncFd drops it.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.to_string())
}

/// Sends the zygote a request for `id`'s keeper (with its stdio) and takes the answer.
async fn ask(socket: &AsyncFd<OwnedFd>, id: &ContainerId, log: &std::fs::File) -> Result<Keeper, Asked> {
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Asked::NotForked(e.to_string()));
    let ((stdin_read, stdin_write), (stdout_read, stdout_write)) = (pipe()?, pipe()?);
    let request = format!("{KEEP_REQUEST} {id}");
    let rights = [stdin_read.as_raw_fd(), stdout_write.as_raw_fd(), log.as_raw_fd()];
    socket
        .async_io(Interest::WRITABLE, |fd| {
            let control = [ControlMessage::ScmRights(&rights)];
            let iov = [IoSlice::new(request.as_bytes())];
            sendmsg::<()>(fd.as_raw_fd(), &iov, &control, MsgFlags::MSG_NOSIGNAL, None).map_err(std::io::Error::from)
        })
        .await
        .map_err(|e| Asked::NotForked(format!("sending to the zygote: {e}")))?;
    // The zygote has its own copies now; the keeper's ends close here.
    drop((stdin_read, stdout_write));
    let mut buf = [0u8; crate::zygote::MESSAGE_MAX];
    let (answer, pidfd) = socket
        .async_io(Interest::READABLE, |fd| {
            let mut space = nix::cmsg_space!([RawFd; 1]);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(fd.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
                .map_err(std::io::Error::from)?;
            let mut pidfd = None;
            for cmsg in msg.cmsgs().into_iter().flatten() {
                if let ControlMessageOwned::ScmRights(fds) = cmsg {
                    for fd in fds {
                        // SAFETY: SCM_RIGHTS descriptors are new in this process and owned by nobody else.
                        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                        pidfd.get_or_insert(fd);
                    }
                }
            }
            Ok((msg.bytes, pidfd))
        })
        .await
        .map_err(|e| Asked::Unknown(format!("reading the zygote's answer: {e}")))?;
    let answer = String::from_utf8_lossy(&buf[..answer]).into_owned();
    if let Some(why) = answer.strip_prefix(crate::zygote::REFUSED) {
        return Err(Asked::Refused(why.trim_start().to_string()));
    }
    let Some(pidfd) = pidfd.filter(|_| answer.starts_with(crate::zygote::FORKED)) else {
        return Err(Asked::Unknown(if answer.is_empty() { "the zygote ended".into() } else { answer }));
    };
    let kill = |pidfd: &OwnedFd, why: String| {
        // SAFETY: a pidfd this function owns, a valid signal, no siginfo.
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), libc::SIGKILL, 0, 0) };
        Asked::Unknown(why)
    };
    let (stdin, stdout) = match (pipe::Sender::from_owned_fd(stdin_write), pipe::Receiver::from_owned_fd(stdout_read)) {
        (Ok(stdin), Ok(stdout)) => (stdin, stdout),
        (Err(e), _) | (_, Err(e)) => return Err(kill(&pidfd, e.to_string())),
    };
    // A copy, so that the keeper can still be killed if the registration fails and drops
    // the original.
    let backup = pidfd.try_clone().map_err(|e| kill(&pidfd, e.to_string()))?;
    let process = register(pidfd, Interest::READABLE).map_err(|e| kill(&backup, e))?;
    Ok(Keeper {
        process: KeeperProcess::Forked(process),
        stdin: Some(stdin),
        lines: Some(BufReader::new(stdout).lines()),
    })
}

/// Writes this process's `PID STARTTIME` to `path`.
pub(crate) fn record(path: &Path) -> Result<(), String> {
    let pid = std::process::id();
    let start = start_time(pid as i32).ok_or("cannot read this process's start time from /proc")?;
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(file, "{pid} {start}").map_err(|e| format!("{}: {e}", path.display()))
}

/// The pid recorded in the keeper file `path`, if that keeper still runs. A file without a
/// start time (written before keepers recorded one) is checked against the command line,
/// which then must name `id`.
pub(crate) fn live(path: &Path, id: &str) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace();
    let pid: i32 = fields.next()?.parse().ok()?;
    let recorded_start = fields.next().and_then(|s| s.parse::<u64>().ok());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let has = |word: &[u8]| cmdline.split(|&b| b == 0).any(|arg| arg == word);
    let ours = has(SUBCOMMAND.as_bytes())
        && match recorded_start {
            Some(start) => start_time(pid) == Some(start),
            None => has(id.as_bytes()),
        };
    (ours && crate::runtime::is_alive(pid)).then_some(pid)
}

/// When process `pid` started, in clock ticks since boot.
fn start_time(pid: i32) -> Option<u64> {
    start_time_in(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time in the text of a `/proc/PID/stat`.
fn start_time_in(stat: &str) -> Option<u64> {
    // Fields after the parenthesised command name (which may hold spaces) start at the
    // third, the state; the start time is the 22nd.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_keeper_is_recognised_only_while_the_same_process_lives() {
        let path = std::env::temp_dir().join(format!("hearth-keeper-test-{}.pid", std::process::id()));
        record(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let (pid, start) = text.trim().split_once(' ').unwrap();
        assert_eq!(pid, std::process::id().to_string());
        // This test binary is not a helper: its command line lacks the subcommand.
        assert_eq!(live(&path, "anything"), None);
        assert!(start.parse::<u64>().unwrap() > 0);
        assert_eq!(start_time(std::process::id() as i32), Some(start.parse().unwrap()));
        // A start time that is not the live process's is a reused pid.
        std::fs::write(&path, format!("{pid} {}\n", start.parse::<u64>().unwrap() + 1)).unwrap();
        assert_eq!(live(&path, "anything"), None);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_exited_line_gives_the_status_when_it_has_one() {
        let said = format!("{EXITED} {}", serde_json::to_string(&ExitStatus::Signal(9)).unwrap());
        assert_eq!(exited(&said), Some(Some(ExitStatus::Signal(9))));
        assert_eq!(exited(r#"exited {"code":3}"#), Some(Some(ExitStatus::Code(3))));
        assert_eq!(exited("exited"), Some(None), "a bare `exited`: the status is on file");
        assert_eq!(exited("exited {nonsense"), Some(None));
        assert_eq!(exited("exitedly"), None);
        assert_eq!(exited("created 42"), None);
    }

    #[test]
    fn the_start_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let rest = (4..=21).map(|n| n.to_string()).collect::<Vec<_>>().join(" ");
        let stat = format!("4242 (a (b) c) S {rest} 987654 23 24");
        assert_eq!(start_time_in(&stat), Some(987654));
        assert_eq!(start_time_in("4242 (short) S 1 2"), None);
        assert_eq!(start_time(0), None);
    }
}

//! Additional processes in a running container (`garden run`): what the caller asks for
//! ([`ProcessSpec`]) and what it gets back ([`Process`]: stdin, output streams, signals,
//! window size, exit status).
//!
//! Each process has a keeper helper (`helper_exec`) in its own process group that writes
//! the process's output to files under the container's directory and its exit status to
//! `exit.json`, so the output streams read files: they work the same for the server that
//! started the process and for one that attached after a restart (from the first byte).
//! Stdin is a pipe from the server that started the process to its keeper: after a
//! restart it is gone (the process has seen end of file) and an attached [`Process`] has
//! no stdin.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::process::{Child, ChildStdin};

use crate::error::Error;
use crate::id::ContainerId;
use crate::spec::User;
use crate::state::ExitStatus;

/// How often an output stream looks for more output or the exit record.
const TAIL_POLL: Duration = Duration::from_millis(5);

/// A process id within its container: the same rules as a container id (it names a
/// directory). Callers may choose it (to attach again later by a name they know) or let
/// the runtime make one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProcessId(String);

impl ProcessId {
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        // The same character rules as container ids: a plain file name, never a flag.
        let id = id.into();
        match ContainerId::new(id.clone()) {
            Ok(_) => Ok(Self(id)),
            Err(_) => Err(Error::InvalidSpec(format!(
                "invalid process id {id:?}: use 1 to 64 characters from [A-Za-z0-9_.-], not starting with '.' or '-'"
            ))),
        }
    }

    /// A fresh id, unique on this host: time, this server's pid and a counter.
    pub fn generate() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self(format!("p-{nanos:x}-{:x}-{n}", std::process::id()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProcessId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl From<ProcessId> for String {
    fn from(id: ProcessId) -> String {
        id.0
    }
}

impl std::fmt::Display for ProcessId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A terminal's size in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    pub cols: u16,
    pub rows: u16,
}

/// A process to run in a running container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Its id; `None`: the runtime makes one.
    pub id: Option<ProcessId>,
    /// Program and arguments. Not empty.
    pub args: Vec<String>,
    /// `NAME=value` pairs added to (and overriding) the container's environment.
    pub env: Vec<String>,
    /// Absolute working directory; `None`: the container's.
    pub cwd: Option<String>,
    /// `None`: the container's user.
    pub user: Option<User>,
    /// `Some`: run on a new pseudo-terminal of this size (stdout and stderr merged into
    /// stdout). `None`: plain pipes and files.
    pub tty: Option<WindowSize>,
    /// Give the process a stdin the caller writes to; otherwise it reads `/dev/null`.
    pub stdin: bool,
}

impl ProcessSpec {
    /// A process with the container's cwd and user, no TTY and no stdin.
    pub fn new(args: Vec<String>) -> Self {
        Self { id: None, args, env: Vec::new(), cwd: None, user: None, tty: None, stdin: false }
    }
}

/// The writing end of a process's stdin: dropping or shutting it down is end of file.
pub type ProcessStdin = ChildStdin;

/// A running or finished exec'd process.
pub struct Process {
    pub(crate) id: ProcessId,
    pub(crate) container: ContainerId,
    pub(crate) dir: PathBuf,
    pub(crate) host_pid: Option<i32>,
    pub(crate) stdin: Option<ProcessStdin>,
    pub(crate) stdout: Option<OutputStream>,
    pub(crate) stderr: Option<OutputStream>,
    /// The keeper, when this server spawned it (to reap it).
    pub(crate) keeper: Option<Child>,
}

impl Process {
    /// Its id, to attach to it again (`Runtime::attach`), e.g. after a restart.
    pub fn id(&self) -> &ProcessId {
        &self.id
    }

    /// Its host pid, when this server started it.
    pub fn host_pid(&self) -> Option<i32> {
        self.host_pid
    }

    /// Its stdin, once; `None` when not asked for or after a restart (`attach`).
    pub fn take_stdin(&mut self) -> Option<ProcessStdin> {
        self.stdin.take()
    }

    /// Its stdout (with stderr, under a TTY) from the first byte until it has ended.
    pub fn take_stdout(&mut self) -> Option<OutputStream> {
        self.stdout.take()
    }

    /// Its stderr (empty under a TTY).
    pub fn take_stderr(&mut self) -> Option<OutputStream> {
        self.stderr.take()
    }

    /// Sends a signal (e.g. 15 for SIGTERM) to the process, through its keeper.
    pub async fn signal(&self, signal: i32) -> Result<(), Error> {
        if !(1..=64).contains(&signal) {
            return Err(self.failure("signal", format!("{signal} is not a signal number")));
        }
        self.control("signal", format!("signal {signal}\n"))
    }

    /// Changes the size of the process's terminal (it gets SIGWINCH).
    pub async fn resize(&self, size: WindowSize) -> Result<(), Error> {
        self.control("resize", format!("resize {} {}\n", size.cols, size.rows))
    }

    /// Waits for the process to end and returns how.
    pub async fn wait(&mut self) -> Result<ExitStatus, Error> {
        if let Some(mut keeper) = self.keeper.take() {
            let _ = keeper.wait().await;
        }
        loop {
            // The keeper first, then the file: a keeper that is gone has written the file
            // (or never will), so the read after the check is conclusive.
            let alive = keeper_alive(&self.dir, &self.id);
            if let Some(exit) = read_exit(&self.dir).map_err(|m| self.failure("wait", m))? {
                return Ok(exit);
            }
            if !alive {
                return Err(self.failure("wait", "its keeper ended without recording an exit status".into()));
            }
            tokio::time::sleep(TAIL_POLL).await;
        }
    }

    /// Writes one line to the keeper's control FIFO. Opening it without blocking fails
    /// when no keeper holds it open: the process has ended.
    fn control(&self, op: &'static str, line: String) -> Result<(), Error> {
        let path = self.dir.join("control");
        let fifo = OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&path);
        match fifo {
            // One short write to a FIFO is atomic: lines from several callers never mix.
            Ok(mut fifo) => fifo.write_all(line.as_bytes()).map_err(Error::io(path)),
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) || e.kind() == std::io::ErrorKind::NotFound => {
                Err(self.failure(op, format!("process {} has ended", self.id)))
            }
            Err(e) => Err(Error::io(path)(e)),
        }
    }

    fn failure(&self, op: &'static str, message: String) -> Error {
        Error::Helper { id: self.container.clone(), op, message }
    }
}

/// Reads a process's recorded exit status, if there is one yet.
pub(crate) fn read_exit(dir: &std::path::Path) -> Result<Option<ExitStatus>, String> {
    match std::fs::read(dir.join("exit.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("exit.json: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("exit.json: {e}")),
    }
}

/// The pid of a process's keeper, if it still runs (`keeper::live`: a reused pid is not
/// mistaken for it).
pub(crate) fn keeper_pid(dir: &std::path::Path, id: &ProcessId) -> Option<i32> {
    crate::keeper::live(&dir.join("keeper.pid"), id.as_str())
}

fn keeper_alive(dir: &std::path::Path, id: &ProcessId) -> bool {
    keeper_pid(dir, id).is_some()
}

/// A process's output as it is written: a file tailed until the process has ended.
pub struct OutputStream {
    inner: DuplexStream,
}

impl OutputStream {
    /// Starts a task that copies `file` into the stream from its first byte and ends the
    /// stream once the process's exit is recorded (or its keeper is gone) and the file is
    /// read to its end.
    pub(crate) fn tail(dir: PathBuf, file: &'static str, id: ProcessId) -> Self {
        let (mut writer, inner) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let path = dir.join(file);
            let mut opened: Option<tokio::fs::File> = None;
            let mut buf = vec![0u8; 32 * 1024];
            let mut finished = false;
            loop {
                if opened.is_none() {
                    opened = tokio::fs::File::open(&path).await.ok();
                }
                let n = match opened.as_mut() {
                    Some(f) => f.read(&mut buf).await.unwrap_or(0),
                    None => 0,
                };
                if n > 0 {
                    if writer.write_all(&buf[..n]).await.is_err() {
                        return; // the reader is gone
                    }
                    continue;
                }
                if finished {
                    return; // read to the end after the process ended: end of stream
                }
                // Decide before the next read, so that read is the conclusive one.
                finished = matches!(read_exit(&dir), Ok(Some(_)) | Err(_)) || !keeper_alive(&dir, &id);
                if !finished {
                    tokio::time::sleep(TAIL_POLL).await;
                }
            }
        });
        Self { inner }
    }

    /// Reads the whole stream (until the process has ended).
    pub async fn read_all(mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.inner.read_to_end(&mut out).await?;
        Ok(out)
    }
}

impl AsyncRead for OutputStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ids_follow_the_container_id_rules() {
        assert_eq!(ProcessId::new("task-1").unwrap().as_str(), "task-1");
        for bad in ["", "..", "a/b", "-x"] {
            assert!(ProcessId::new(bad).is_err(), "{bad:?}");
        }
        let (a, b) = (ProcessId::generate(), ProcessId::generate());
        assert_ne!(a, b);
        assert!(ProcessId::new(a.as_str()).is_ok(), "a generated id is valid: {a}");
    }
}

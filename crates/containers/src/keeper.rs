//! Keepers: the helper processes that create a container and then wait for its main
//! process (`helper`'s `keep`), and how a keeper is told apart from whatever process later
//! reuses its pid.
//!
//! Starting a keeper costs an exec of this large binary before it does anything (measured
//! here: 3.5-3.8 ms of a 12.7 ms create-to-destroy, most of it loading and relocating the
//! binary). So the runtime keeps one *standby* keeper started ahead:
//! `container-helper standby ROOT [idle]` waits on stdin for a line `keep ID` and from then
//! on is exactly `container-helper keep ROOT ID`. A create takes the standby and, once its own
//! container exists, starts the next one. A standby holds nothing but its pipes; it ends
//! when its stdin closes, so with the server.
//!
//! A keeper records `PID STARTTIME` in its `keeper.pid`. The start time (field 22 of
//! `/proc/PID/stat`) together with the pid names one process for the life of the host, so
//! a standby (whose command line carries no container id) is recognised as the keeper it
//! became, and a reused pid is not.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::error::Error;
use crate::helper::SUBCOMMAND;
use crate::id::ContainerId;

/// The word a standby keeper expects before the container id.
pub(crate) const KEEP_REQUEST: &str = "keep";

/// A keeper this server spawned: its child handle (to reap it), its stdin until the
/// container is started, and its output lines until it has said `exited` (then `wait`
/// hands it to `reap`).
pub(crate) struct Keeper {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub lines: Option<Lines<BufReader<ChildStdout>>>,
}

/// How long a keeper may take to end once its main process is gone (or killed).
pub(crate) const EXIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The line a keeper prints once the exit status is on file, just before it ends.
pub(crate) const EXITED: &str = "exited";

impl Keeper {
    /// Reads the keeper's output until it says `exited` (true) or ends (false).
    pub async fn until_exited(lines: &mut Lines<BufReader<ChildStdout>>) -> bool {
        loop {
            match lines.next_line().await {
                Ok(Some(line)) if line == EXITED => return true,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return false,
            }
        }
    }
}

/// Waits for a keeper that said `exited` to end (it only exits by then), killing it if it
/// has not within the keeper timeout.
pub(crate) async fn reap(mut child: Child) {
    if tokio::time::timeout(EXIT_TIMEOUT, child.wait()).await.is_err() {
        let _ = child.kill().await;
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

/// The one keeper started ahead of need.
pub(crate) struct Standby {
    helper: PathBuf,
    root: PathBuf,
    /// The standby and, if it was started idle, the scheduling to give it.
    slot: Mutex<Option<(Child, Option<Scheduling>)>>,
    /// A refill is under way.
    refilling: AtomicBool,
}

impl Standby {
    pub fn new(helper: PathBuf, root: PathBuf) -> Self {
        Self { helper, root, slot: Mutex::new(None), refilling: AtomicBool::new(false) }
    }

    /// A keeper creating container `id` (whose bundle is written), with its stdin and
    /// stdout: the standby one when there is one, else one spawned now. Its stderr goes to
    /// `log`. A standby started idle gets the server's scheduling back first (or is not
    /// used): the container's processes inherit it, and the create must not wait on an
    /// idle process.
    pub async fn keep(&self, id: &ContainerId, log: &Path) -> Result<(Child, ChildStdin, ChildStdout), Error> {
        let standby = self.slot.lock().expect("standby lock").take();
        if let Some((mut child, idle)) = standby {
            let running = matches!(child.try_wait(), Ok(None));
            let scheduled = match (idle, child.id()) {
                (None, _) => true,
                (Some(normal), Some(pid)) => normal.apply(pid as i32),
                (Some(_), None) => false,
            };
            if running && scheduled {
                let mut stdin = child.stdin.take().expect("piped stdin");
                let stdout = child.stdout.take().expect("piped stdout");
                let request = format!("{KEEP_REQUEST} {id}\n");
                if stdin.write_all(request.as_bytes()).await.is_ok() {
                    return Ok((child, stdin, stdout));
                }
            }
            // Gone, not listening or not rescheduled: it is not waited for (tokio reaps it)
            // and a fresh keeper does the job.
            let _ = child.start_kill();
        }
        let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(log);
        let file = file.map_err(Error::io(log))?;
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
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        Ok((child, stdin, stdout))
    }

    /// Starts a standby keeper, unless one waits or is being started, on a blocking thread:
    /// the caller does not wait for the exec. A failure to start one is logged, not
    /// returned: the next create spawns its keeper itself and reports what goes wrong.
    ///
    /// Where the server can (`idle_works`), the standby starts under `SCHED_IDLE`
    /// (inherited from the spawning thread, which takes its own scheduling back at once),
    /// and `keep` gives it the server's scheduling when it hands it a container: loading
    /// this binary is the bulk of its work, and under normal scheduling (even at nice 19)
    /// it slowed the container started meanwhile (measured: start 0.75 → 1.2-1.5 ms
    /// median).
    pub fn refill(this: &std::sync::Arc<Self>) {
        if this.slot.lock().expect("standby lock").is_some() || this.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = this.clone();
        tokio::task::spawn_blocking(move || {
            let idle = idle_works().filter(|_| IDLE_SCHEDULING.apply(0));
            let mut args = vec![std::ffi::OsString::from("standby"), this.root.clone().into_os_string()];
            if idle.is_some() {
                args.push(IDLE.into());
            }
            let spawned = helper_command(&this.helper, args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn();
            if let Some(normal) = idle
                && !normal.apply(0)
            {
                tracing::warn!("a blocking thread could not leave SCHED_IDLE after starting a keeper");
            }
            let mut slot = this.slot.lock().expect("standby lock");
            match (slot.as_ref(), spawned) {
                (None, Ok(child)) => *slot = Some((child, idle)),
                // Dropped: its stdin closes and it ends.
                (Some(_), Ok(_)) => {}
                (_, Err(e)) => {
                    tracing::warn!(error = %e, helper = %this.helper.display(), "cannot start a standby keeper")
                }
            }
            this.refilling.store(false, Ordering::Release);
        });
    }
}

/// The argument that tells a standby keeper it was started under `SCHED_IDLE`.
pub(crate) const IDLE: &str = "idle";

/// A thread's scheduling policy and static priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scheduling {
    policy: libc::c_int,
    priority: libc::c_int,
}

const IDLE_SCHEDULING: Scheduling = Scheduling { policy: libc::SCHED_IDLE, priority: 0 };

impl Scheduling {
    /// Of thread `tid` (0: the calling thread).
    fn of(tid: i32) -> Option<Self> {
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain integers and a valid sched_param to fill.
        let (policy, got) = unsafe { (libc::sched_getscheduler(tid), libc::sched_getparam(tid, &mut param)) };
        (policy >= 0 && got == 0).then_some(Self { policy, priority: param.sched_priority })
    }

    /// Gives thread `tid` (0: the calling thread) this scheduling.
    fn apply(self, tid: i32) -> bool {
        let param = libc::sched_param { sched_priority: self.priority };
        // SAFETY: param is a valid sched_param for the duration of the call.
        unsafe { libc::sched_setscheduler(tid, self.policy, &param) == 0 }
    }
}

/// The server's scheduling, if a thread of it can go idle and come back: leaving
/// `SCHED_IDLE` takes `CAP_SYS_NICE` in the host's user namespace (root in an unprivileged
/// container lacks it). Tried once, on a thread of its own that ends after.
fn idle_works() -> Option<Scheduling> {
    static PROBED: std::sync::OnceLock<Option<Scheduling>> = std::sync::OnceLock::new();
    *PROBED.get_or_init(|| {
        let probe = || {
            let normal = Scheduling::of(0).filter(|s| s.policy != libc::SCHED_IDLE)?;
            (IDLE_SCHEDULING.apply(0) && normal.apply(0)).then_some(normal)
        };
        std::thread::spawn(probe).join().ok().flatten()
    })
}

/// Whether the calling thread runs under `SCHED_IDLE`.
pub(crate) fn is_idle() -> bool {
    Scheduling::of(0).is_some_and(|s| s.policy == libc::SCHED_IDLE)
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
    fn the_start_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let rest = (4..=21).map(|n| n.to_string()).collect::<Vec<_>>().join(" ");
        let stat = format!("4242 (a (b) c) S {rest} 987654 23 24");
        assert_eq!(start_time_in(&stat), Some(987654));
        assert_eq!(start_time_in("4242 (short) S 1 2"), None);
        assert_eq!(start_time(0), None);
    }
}

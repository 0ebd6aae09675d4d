//! The zygote: `hearth container-helper zygote ROOT`, the process keepers are forked from.
//!
//! An exec of this large binary costs 3-4 ms before it does anything (loading and
//! relocating it); a fork of a process that has already paid it costs a tenth of that, and
//! loads nothing on the side while the container runs (a keeper loaded ahead, in the
//! background, was measured to slow the container it ran beside: its `/bin/true` took
//! 1-5 ms instead of 1-1.5). So the runtime starts one zygote per runtime root and asks it
//! for each keeper.
//!
//! Protocol, on a `SOCK_SEQPACKET` socket that is the zygote's stdin: the server sends
//! `keep ID` with three descriptors (the keeper's stdin, stdout and stderr); the zygote
//! forks, and the child becomes exactly what `container-helper keep ROOT ID` would be with
//! those as its stdio, in a process group of its own. The zygote answers `forked PID` with
//! a pidfd of the child; `refused MESSAGE` when it forked nothing (a bad request, a failed
//! fork); `error MESSAGE` when it forked but could not hand the child over (it killed it).
//! It reaps its children as they end; it ends when the server's end of the socket closes
//! (or the server kills it), and its keepers go on without it.
//!
//! The zygote is single-threaded (so forking it is safe) and holds only the socket, a
//! signalfd and its stdio.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::ExitCode;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use crate::id::ContainerId;
use crate::keeper::KEEP_REQUEST;
use crate::layout::Layout;

/// The socket the server talks on.
const SOCKET: RawFd = 0;
/// Descriptors a request carries: the keeper's stdin, stdout and stderr.
const STDIO: usize = 3;
/// The most a request or an answer holds (`keep` and an id of at most 128 bytes).
pub(crate) const MESSAGE_MAX: usize = 256;
/// How an answer starts when a keeper was forked and its pidfd comes with it.
pub(crate) const FORKED: &str = "forked ";
/// How an answer starts when nothing was forked.
pub(crate) const REFUSED: &str = "refused ";

/// Why a request got no keeper.
enum Failed {
    /// Nothing was forked.
    Refused(String),
    /// A child was forked, and killed: it could not be handed over.
    Killed(String),
}

/// Serves fork requests until the server goes (see the module doc).
pub(crate) fn serve(root: &Path) -> ExitCode {
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let Ok(old_mask) = chld.thread_swap_mask(SigmaskHow::SIG_BLOCK) else { return ExitCode::FAILURE };
    let Ok(signals) = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) else {
        eprintln!("zygote: cannot open a signalfd");
        return ExitCode::FAILURE;
    };
    loop {
        let mut fds = [
            libc::pollfd { fd: SOCKET, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: signals.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: fds is a valid array of two pollfds for the duration of the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return ExitCode::FAILURE;
        }
        if fds[1].revents != 0 {
            while let Ok(Some(_)) = signals.read_signal() {}
            reap_children();
        }
        if fds[0].revents == 0 {
            continue;
        }
        let mut buf = [0u8; MESSAGE_MAX];
        let mut space = nix::cmsg_space!([RawFd; STDIO]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let (len, received) = match recvmsg::<()>(SOCKET, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(msg) => {
                let mut received = Vec::new();
                for cmsg in msg.cmsgs().into_iter().flatten() {
                    if let ControlMessageOwned::ScmRights(fds) = cmsg {
                        // SAFETY: SCM_RIGHTS descriptors are new in this process and owned by nobody else.
                        received.extend(fds.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
                (msg.bytes, received)
            }
            Err(nix::Error::EINTR | nix::Error::EAGAIN) => continue,
            Err(_) => return ExitCode::FAILURE,
        };
        if len == 0 {
            return ExitCode::SUCCESS; // The server closed its end.
        }
        let request = String::from_utf8_lossy(&buf[..len]).into_owned();
        let answer = fork_keeper(root, &request, received, &old_mask, &signals);
        let (text, pidfd) = match answer {
            Ok((pid, pidfd)) => (format!("{FORKED}{pid}"), Some(pidfd)),
            Err(Failed::Refused(message)) => (format!("{REFUSED}{message}"), None),
            Err(Failed::Killed(message)) => (format!("error {message}"), None),
        };
        let rights: Vec<RawFd> = pidfd.iter().map(AsRawFd::as_raw_fd).collect();
        let control: Vec<ControlMessage> =
            if rights.is_empty() { Vec::new() } else { vec![ControlMessage::ScmRights(&rights)] };
        if sendmsg::<()>(SOCKET, &[IoSlice::new(text.as_bytes())], &control, MsgFlags::MSG_NOSIGNAL, None).is_err() {
            return ExitCode::SUCCESS; // The server is gone; its keepers are not ours to stop.
        }
    }
}

/// Forks the keeper `request` (`keep ID`) asks for, with `stdio` as its fds 0-2; answers its
/// pid and a pidfd of it.
fn fork_keeper(
    root: &Path,
    request: &str,
    stdio: Vec<OwnedFd>,
    old_mask: &SigSet,
    signals: &SignalFd,
) -> Result<(i32, OwnedFd), Failed> {
    let id = requested_id(request, stdio.len()).map_err(Failed::Refused)?;
    // SAFETY: this process is single-threaded, so the child may go on like any program
    // (allocate, read files): no lock is held by a thread that is not there.
    match unsafe { libc::fork() } {
        -1 => Err(Failed::Refused(format!("fork: {}", std::io::Error::last_os_error()))),
        0 => {
            // SAFETY: in the child, on descriptors this process owns: the signalfd goes
            // first (so no number of it is reused below), the received ones go to 0-2
            // (dup2 leaves the copies without close-on-exec; one already there only loses
            // close-on-exec), the signal mask is the one the zygote started with.
            unsafe {
                libc::close(signals.as_raw_fd());
                for (target, fd) in stdio.into_iter().enumerate() {
                    let (fd, target) = (std::os::fd::IntoRawFd::into_raw_fd(fd), target as RawFd);
                    if fd == target {
                        libc::fcntl(fd, libc::F_SETFD, 0);
                    } else {
                        libc::dup2(fd, target);
                        libc::close(fd);
                    }
                }
                libc::sigprocmask(libc::SIG_SETMASK, old_mask.as_ref(), std::ptr::null_mut());
                // Its own process group: a Ctrl-C meant for the server does not reach keepers.
                libc::setpgid(0, 0);
            }
            show_as_keeper();
            // A panic ends the keeper here rather than unwinding into the zygote's loop.
            let keep = std::panic::AssertUnwindSafe(|| crate::helper::keep(&Layout::new(root), &id));
            let code = std::panic::catch_unwind(keep);
            std::process::exit(if matches!(code, Ok(c) if c == ExitCode::SUCCESS) { 0 } else { 1 });
        }
        pid => {
            drop(stdio);
            // The child is not reaped before this returns (reaping happens in `serve`), so
            // the pid still names it.
            // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
            if fd < 0 {
                let error = std::io::Error::last_os_error();
                // SAFETY: our own child, not yet reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return Err(Failed::Killed(format!("pidfd_open: {error}")));
            }
            // SAFETY: a new descriptor nobody else owns.
            Ok((pid, unsafe { OwnedFd::from_raw_fd(fd) }))
        }
    }
}

/// The container a request (`keep ID` with [`STDIO`] descriptors) asks a keeper for.
fn requested_id(request: &str, descriptors: usize) -> Result<ContainerId, String> {
    let id = request
        .strip_prefix(KEEP_REQUEST)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(|| format!("expected `{KEEP_REQUEST} ID`, not {request:?}"))
        .and_then(|id| ContainerId::new(id).map_err(|e| e.to_string()))?;
    if descriptors != STDIO {
        return Err(format!("a request carries {STDIO} descriptors, not {descriptors}"));
    }
    Ok(id)
}

/// Makes this forked keeper's command line read `… container-helper keeper ROOT` where the
/// zygote's reads `… zygote ROOT`, so that `ps` (and whoever looks for leftovers) tells them
/// apart. The kernel shows the bytes between this process's `arg_start` and `arg_end`
/// (fields 48 and 49 of `/proc/self/stat`), the argument strings the exec put on the stack,
/// and both words have six letters.
fn show_as_keeper() {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    let Some((_, rest)) = stat.rsplit_once(')') else { return };
    let field = |n: usize| rest.split_whitespace().nth(n - 3).and_then(|f| f.parse::<usize>().ok());
    let (Some(start), Some(end)) = (field(48), field(49)) else { return };
    if start == 0 || end <= start {
        return;
    }
    // SAFETY: [arg_start, arg_end) is this process's own argument area, mapped and writable
    // for the life of the process; this process is single-threaded and nothing reads the
    // area while it is changed. Only six bytes that read `zygote` are rewritten.
    let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, end - start) };
    let word = b"\0zygote\0";
    if let Some(at) = area.windows(word.len()).position(|w| w == word) {
        area[at + 1..at + word.len() - 1].copy_from_slice(b"keeper");
    }
}

/// Reaps every child that has ended.
fn reap_children() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_a_valid_container_and_carries_three_descriptors() {
        assert_eq!(requested_id("keep web-1", 3).unwrap().as_str(), "web-1");
        for (request, descriptors) in
            [("keep web-1", 2), ("keep web-1", 4), ("keep", 3), ("keep ", 3), ("keepweb-1", 3), ("start web-1", 3)]
        {
            assert!(requested_id(request, descriptors).is_err(), "{request:?} with {descriptors}");
        }
        assert!(requested_id("keep ../escape", 3).is_err(), "an id that is a path is refused");
        assert!(requested_id("keep a/b", 3).is_err());
    }
}

//! The minimal init a container may ask for (`ContainerSpec::init`), run by the helper
//! inside the container right where the main process would be exec'd: it forks, the child
//! execs the main process, and this process stays as PID 1. It forwards the signals a
//! stop sends (and the others an app may act on) to every process in the container,
//! reaps orphans so no zombie piles up, and exits with the main process's status — at
//! once when the main process ends on its own, or, once it forwarded a stop signal, when
//! every process has ended (a launcher shell that dies at SIGTERM must not take the app's
//! graceful shutdown down with it). A death by signal N becomes exit code 128+N: PID 1
//! cannot die of a signal sent from inside its namespace.

use libcontainer::workload::ExecutorError;
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// A file in the root filesystem whose `NAME=value` lines join the main process's
/// environment (written by `Runtime::start_with_env` before the start).
pub(crate) const START_ENV: &str = "/.hearth-start-env";

/// `spec` with the lines of `START_ENV` (if there is one) added to its process's
/// environment, replacing variables of the same name.
pub(crate) fn with_start_env(spec: &oci_spec::runtime::Spec) -> oci_spec::runtime::Spec {
    let Ok(text) = std::fs::read_to_string(START_ENV) else { return spec.clone() };
    let mut spec = spec.clone();
    if let Some(process) = spec.process_mut() {
        let mut env = process.env().clone().unwrap_or_default();
        for line in text.lines().filter(|l| l.contains('=')) {
            let (name, value) = line.split_once('=').unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(name));
            env.push(line.to_string());
            // libcontainer's executor execs with this process's environment, which its init
            // set from the spec before calling it.
            // SAFETY: the helper is single-threaded here, right before it forks and execs.
            unsafe { std::env::set_var(name, value) };
        }
        process.set_env(Some(env));
    }
    spec
}

/// Signals forwarded to the container's processes.
const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Signals after which the container is stopping: init waits for every process.
fn stops(signal: Signal) -> bool {
    matches!(signal, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT | Signal::SIGHUP)
}

/// The exit code init ends with for the main process's end.
pub(crate) fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as i32),
        _ => None,
    }
}

/// Forks; the child runs `exec` (which does not return on success), this process
/// supervises it and never returns.
pub(crate) fn run(exec: impl FnOnce() -> Result<(), ExecutorError>) -> Result<(), ExecutorError> {
    let mut watched = SigSet::empty();
    for signal in FORWARDED {
        watched.add(signal);
    }
    watched.add(Signal::SIGCHLD);
    let mut before = SigSet::empty();
    // Blocked before the fork, so a signal that comes before the loop waits is not lost.
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&watched), Some(&mut before))
        .map_err(|e| ExecutorError::Other(format!("init: block signals: {e}")))?;
    // SAFETY: the helper is single-threaded here (libcontainer's container init process).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&before), None)
                .map_err(|e| ExecutorError::Other(format!("init: restore the signal mask: {e}")))?;
            exec()
        }
        Ok(ForkResult::Parent { child }) => supervise(child, &watched),
        Err(e) => Err(ExecutorError::Other(format!("init: fork the main process: {e}"))),
    }
}

fn supervise(child: Pid, watched: &SigSet) -> ! {
    let mut stopping = false;
    let mut main_exit: Option<i32> = None;
    loop {
        if let Ok(signal) = watched.wait()
            && signal != Signal::SIGCHLD
        {
            stopping |= stops(signal);
            // -1: every process this one may signal in its namespace, itself excepted.
            let _ = kill(Pid::from_raw(-1), signal);
        }
        let mut none_left = false;
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) => {
                    if status.pid() == Some(child) {
                        main_exit = exit_code(status).or(main_exit);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => {
                    none_left = true;
                    break;
                }
            }
        }
        if let Some(code) = main_exit
            && (!stopping || none_left)
        {
            // SAFETY: ending the process without running the parent's atexit handlers.
            unsafe { libc::_exit(code) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_death_by_signal_is_exit_code_128_plus_the_signal() {
        let pid = Pid::from_raw(7);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)), Some(137));
        assert_eq!(exit_code(WaitStatus::Signaled(pid, Signal::SIGTERM, true)), Some(143));
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
        assert!(stops(Signal::SIGTERM) && !stops(Signal::SIGUSR1));
    }
}

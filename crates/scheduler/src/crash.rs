//! Diego's crash restart policy: the first 3 crashes restart at once, then waits of 30 s
//! doubling up to 16 minutes, no more restarts once 200 crashes are counted; an instance
//! that ran for 5 minutes before crashing starts counting afresh.

use std::time::Duration;

/// Crashes restarted without waiting.
pub const IMMEDIATE_RESTARTS: u32 = 3;
/// The first wait after the immediate restarts.
pub const MIN_BACKOFF: Duration = Duration::from_secs(30);
/// The longest wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(16 * 60);
/// After this many crashes the instance stays CRASHED.
pub const MAX_CRASHES: u32 = 200;
/// Running this long before a crash resets the count.
pub const RESET_AFTER: Duration = Duration::from_secs(5 * 60);

/// When the instance that has now crashed `crash_count` times (this crash included) may start again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    Immediately,
    After(Duration),
    Never,
}

/// The policy for an instance that has crashed `crash_count` times, this crash included.
pub fn restart_policy(crash_count: u32) -> Restart {
    if crash_count <= IMMEDIATE_RESTARTS {
        Restart::Immediately
    } else if crash_count >= MAX_CRASHES {
        Restart::Never
    } else {
        let exponent = crash_count - IMMEDIATE_RESTARTS - 1;
        let wait = if exponent >= 16 { MAX_BACKOFF } else { MIN_BACKOFF.saturating_mul(1 << exponent) };
        Restart::After(wait.min(MAX_BACKOFF))
    }
}

/// The crash count after a crash, given the count before it and how long the instance had
/// been in its last state (RUNNING for `ran`) when it crashed.
pub fn next_crash_count(previous: u32, ran: Duration) -> u32 {
    if ran >= RESET_AFTER { 1 } else { previous.saturating_add(1) }
}

/// Whether a CRASHED instance that crashed `crash_count` times, `since` ago, may restart now.
pub fn may_restart(crash_count: u32, crashed_for: Duration) -> bool {
    match restart_policy(crash_count) {
        Restart::Immediately => true,
        Restart::After(wait) => crashed_for >= wait,
        Restart::Never => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_three_crashes_restart_at_once_then_the_wait_doubles_to_sixteen_minutes() {
        for n in 1..=3 {
            assert_eq!(restart_policy(n), Restart::Immediately, "crash {n}");
        }
        let waits: Vec<Restart> = (4..=10).map(restart_policy).collect();
        let secs = |s| Restart::After(Duration::from_secs(s));
        assert_eq!(waits, vec![secs(30), secs(60), secs(120), secs(240), secs(480), secs(960), secs(960)]);
        assert_eq!(restart_policy(199), secs(960));
        assert_eq!(restart_policy(200), Restart::Never);
        assert_eq!(restart_policy(10_000), Restart::Never);
    }

    #[test]
    fn backoff_elapses_and_five_minutes_running_resets_the_count() {
        assert!(may_restart(3, Duration::ZERO));
        assert!(!may_restart(4, Duration::from_secs(29)));
        assert!(may_restart(4, Duration::from_secs(30)));
        assert!(!may_restart(200, Duration::from_secs(86_400)));
        assert_eq!(next_crash_count(7, Duration::from_secs(299)), 8);
        assert_eq!(next_crash_count(7, Duration::from_secs(300)), 1);
        assert_eq!(next_crash_count(u32::MAX, Duration::ZERO), u32::MAX);
    }
}

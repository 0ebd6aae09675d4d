//! Every timing the scheduler uses, with Diego's defaults, in one place.

use std::time::Duration;

/// The scheduler's timings and limits.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// How often the convergence loop runs (Diego: 30 s).
    pub convergence_interval: Duration,
    /// A cell silent for this long is declared missing (the issue: within 15 s).
    pub cell_missing_after: Duration,
    /// A claim not followed by RUNNING within this long is released (the maximum start timeout).
    pub stale_claim_after: Duration,
    /// An UNCLAIMED instance waiting this long is offered to the auction again (Diego: 30 s).
    pub stale_unclaimed_after: Duration,
    /// Default and maximum health-check start timeouts (Diego: 60 s, 180 s).
    pub start_timeout: Duration,
    pub max_start_timeout: Duration,
    /// Health checks while healthy / while not yet healthy (Diego: 30 s / 2 s).
    pub liveness_interval: Duration,
    pub startup_check_interval: Duration,
    /// An evacuating instance is stopped after this long even if its replacement never ran.
    pub evacuation_timeout: Duration,
    /// A PENDING task is offered to the auction again after this long (Diego: 30 s).
    pub kick_task_after: Duration,
    /// A PENDING task that has not started in this long fails (Diego: 30 min).
    pub expire_pending_task_after: Duration,
    /// A COMPLETED task is resolved or removed after this long (Diego: 2 min).
    pub expire_completed_task_after: Duration,
    /// Graceful stop: SIGTERM, then SIGKILL after this long.
    pub stop_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            convergence_interval: Duration::from_secs(30),
            cell_missing_after: Duration::from_secs(15),
            stale_claim_after: Duration::from_secs(180),
            stale_unclaimed_after: Duration::from_secs(30),
            start_timeout: Duration::from_secs(60),
            max_start_timeout: Duration::from_secs(180),
            liveness_interval: Duration::from_secs(30),
            startup_check_interval: Duration::from_secs(2),
            evacuation_timeout: Duration::from_secs(600),
            kick_task_after: Duration::from_secs(30),
            expire_pending_task_after: Duration::from_secs(30 * 60),
            expire_completed_task_after: Duration::from_secs(120),
            stop_grace: Duration::from_secs(10),
        }
    }
}

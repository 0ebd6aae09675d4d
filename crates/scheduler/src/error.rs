//! The scheduler's error type: illegal transitions, refused placements, stale writes.

use crate::placement::PlacementError;

/// What went wrong in the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("actual LRP {key}: cannot {event} while {state}")]
    ActualTransition { key: String, state: &'static str, event: &'static str },
    #[error("actual LRP {key}: held by instance {held} on cell {cell}, not by {by}")]
    InstanceMismatch { key: String, held: String, cell: String, by: String },
    #[error("task {guid}: cannot {event} while {state}")]
    TaskTransition { guid: String, state: &'static str, event: &'static str },
    #[error("cell {id}: cannot {event} while {state}")]
    CellTransition { id: String, state: &'static str, event: &'static str },
    #[error("invalid {what}: {why}")]
    Invalid { what: String, why: String },
    #[error("cannot place {what}: {reason}")]
    Placement { what: String, reason: PlacementError },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    #[error("{what} was changed by someone else (expected version {expected})")]
    Stale { what: String, expected: i64 },
    #[error(transparent)]
    Store(#[from] hearth_store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

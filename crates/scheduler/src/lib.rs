//! Hearth's scheduler core: what Diego's BBS, auctioneer and converger decide.
//!
//! - [`model`], [`actual`], [`task`], [`cell`]: desired LRPs, actual LRP instances, tasks and
//!   cells, each lifecycle an explicit state enum with one transition function.
//! - [`crash`]: Diego's crash restart policy. [`placement`]: the auction (scoring, zones,
//!   stacks, placement tags) and the 'boulder' rebalancing plan. [`converge`]: desired vs
//!   actual → a list of typed actions.
//! - [`persist`]: the thin I/O edge, a [`persist::SchedulerStore`] over hearth-store with
//!   compare-and-swap updates, publishing every change as an [`events::Event`].
//! - [`staging`]: a task's kind (a command or a staging) and what a staging task carries
//!   and records as its result.
//!
//! Invariants: everything but `persist` is plain functions over data (time comes in as an
//! argument or through [`clock::Clock`]), so it is tested without root or a database. The
//! crate knows nothing of containers, images, HTTP or the CF wire format: cells that run
//! containers and the API sit on top of it.

pub mod actual;
pub mod cell;
pub mod clock;
pub mod config;
pub mod converge;
pub mod crash;
mod error;
pub mod events;
pub mod model;
pub mod persist;
pub mod placement;
pub mod rebalance;
pub mod sim;
pub mod staging;
pub mod task;

pub use actual::{ActualLrp, ActualLrpEvent, ActualLrpKey, ActualState, PreferredAddress, Presence};
pub use cell::{Cell, CellEvent, CellState, Resources};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use converge::{Action, Snapshot, converge};
pub use error::{Error, Result};
pub use events::Event;
pub use model::{DesiredLrp, DesiredLrpUpdate, HealthCheck, HealthCheckType, ImageCredentials, RootFs};
pub use placement::{Auction, AuctionResult, PlacementError, Start};
pub use staging::{StagingBuildpack, StagingResult, StagingSpec, TaskKind};
pub use task::{Task, TaskDefinition, TaskEvent, TaskState};

/// Times are UTC instants; the store keeps them as RFC 3339 text with microseconds.
pub type Time = time::OffsetDateTime;

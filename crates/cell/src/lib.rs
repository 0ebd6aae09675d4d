//! `hearth-cell`: one machine's share of the work (Diego's rep and executor), and the
//! scheduler's loop that hands work to cells.
//!
//! - [`node`]: this machine's container runtime and image store side by side.
//! - [`instance`]: a desired LRP's instance → the container request (pure).
//! - [`health`]: `port`, `http` and `process` health checks from the cell.
//! - [`rep`]: the cell: register, heartbeat, claim, create, start, report RUNNING once
//!   healthy, keep checking, report crashes with their reason, stop gracefully, take up
//!   its containers again after a restart.
//! - [`output`]: an instance's stdout and stderr followed into its app's logs.
//! - [`metrics`]: an instance's cpu, memory and disk sampled into its app's logs as gauges.
//! - [`staging`]: buildpack staging in a container on this machine; the droplet becomes
//!   a layer in the image store.
//! - [`staging_task`]: staging as a scheduler task: the cell the auction chose fetches the
//!   package, buildpacks and cache through its [`staging_task::StagingBits`], stages, stores
//!   the droplet and completes the task with the result (or CF's staging error).
//! - [`droplet`]: a CF droplet tgz → its layer (the same digest for the same tgz, so an
//!   uploaded, copied or re-imported droplet is the staged one); the rep imports a missing
//!   droplet layer through a [`rep::DropletSource`] before it starts an instance.
//! - [`task`]: one-off tasks: a placed task's command in a `task-` container, its output
//!   as `APP/TASK/<name>` lines, its exit recorded; cancel; reattach after a restart.
//! - [`link`]: the cell ↔ scheduler traits ([`SchedulerLink`], [`CellHandle`]), so a cell
//!   runs the same in the server's process and on another machine.
//! - [`converger`]: the loop that converges desired and actual state through the
//!   scheduler's store, auctions and hands placements and stops to cells.
//!
//! Invariants: the scheduler's store is the only shared state; a cell learns what to run
//! from the converger and reports only through the store (claim, start, crash, remove),
//! so what it reports is what the API and router see. A cell owns the containers whose id
//! starts with `lrp-` (instances), `task-` (tasks) or `staging-` (staging tasks) and no others. It knows nothing of HTTP or the CF wire format.

pub mod converger;
pub mod droplet;
pub mod health;
pub mod instance;
pub mod link;
pub mod metrics;
pub mod node;
pub mod output;
pub mod rep;
pub mod staging;
pub mod staging_task;
pub mod task;

pub use converger::{Converger, RoundReport};
pub use link::{CellHandle, Command, SchedulerLink};
pub use node::{ContainerRequest, Node, NodeConfig};
pub use rep::{CellConfig, Rep};

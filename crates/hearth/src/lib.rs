//! The `hearth` binary's library half: server configuration, the runner shape every
//! long-running part follows, and the composition of the platform in one process.
//! `main.rs` only parses the command line and calls in here (or the CLI crate).

pub mod cells;
pub mod config;
mod droplets;
mod ops;
mod routing;
pub mod runner;
pub mod sample_app;
pub mod server;
pub mod staging;

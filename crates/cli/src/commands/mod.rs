//! One module per group of commands; each exposes its clap `Args` structs
//! and an async function per command.

pub mod api;
pub mod curl;
pub mod login;
pub mod members;
pub mod node;
pub mod orgs;
pub mod roles;
pub mod spaces;
pub mod target;
pub mod users;

//! One module per group of commands; each exposes its clap `Args` structs
//! and an async function per command.

pub mod api;
pub mod app_data;
pub mod apps;
pub mod buildpacks;
pub mod curl;
pub mod lifecycle;
pub mod login;
pub mod logs;
pub mod members;
pub mod node;
pub mod orgs;
pub mod platform;
pub mod push;
pub mod roles;
pub mod routes;
pub mod services;
pub mod spaces;
pub mod target;
pub mod tasks;
pub mod users;

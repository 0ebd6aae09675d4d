//! The crate's one error type.

use std::path::PathBuf;

use crate::id::ContainerId;
use crate::state::{Action, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {0:?}: use 1 to 64 characters from [A-Za-z0-9_.-], not starting with '.' or '-'")]
    InvalidId(String),
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    #[error("container {0} already exists")]
    AlreadyExists(ContainerId),
    #[error("container {0} does not exist")]
    NotFound(ContainerId),
    #[error("container {id} has no process {process}")]
    ProcessNotFound { id: ContainerId, process: String },
    #[error("container {id} already has a process {process}")]
    ProcessExists { id: ContainerId, process: String },
    #[error("container {id} is {status:?}: cannot {action:?} it")]
    IllegalTransition { id: ContainerId, status: Status, action: Action },
    #[error("container {id}: {op} failed: {message}")]
    Helper { id: ContainerId, op: &'static str, message: String },
    #[error("rootless: {0}")]
    Rootless(String),
    #[error("network: {0}")]
    Network(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

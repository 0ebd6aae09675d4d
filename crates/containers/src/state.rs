//! A container's lifecycle: its status, the one transition check, and how a process ended.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::id::ContainerId;

/// Where a container is in its life.
///
/// `Created`: namespaces, cgroup and mounts exist; the main process waits to be started.
/// `Running`: the main process runs. `Stopped`: it has exited (or was never started and
/// its init is gone); only `destroy` is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    Running,
    Stopped,
}

/// What a caller asks of a container. `destroy` is always allowed, so it is not here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Start,
    Kill,
    /// Run another process in the container (needs a running main process).
    Exec,
    /// Stream files in or out (needs the container's namespaces: created or running).
    Stream,
}

impl Status {
    /// The one transition function: the status after `action`, or why it is refused.
    pub fn apply(self, id: &ContainerId, action: Action) -> Result<Status, Error> {
        match (self, action) {
            (Status::Created, Action::Start) => Ok(Status::Running),
            (Status::Created | Status::Running, Action::Kill | Action::Stream) => Ok(self),
            (Status::Running, Action::Exec) => Ok(self),
            (Status::Running | Status::Stopped, Action::Start)
            | (Status::Stopped, Action::Kill | Action::Stream)
            | (Status::Created | Status::Stopped, Action::Exec) => {
                Err(Error::IllegalTransition { id: id.clone(), status: self, action })
            }
        }
    }
}

/// How a container's main process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Code(i32),
    /// A signal killed it (9 for SIGKILL, which is what the OOM killer sends).
    Signal(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

/// A container's status from what is on disk: the keeper's exit record, and
/// libcontainer's recorded status with whether its init process still lives.
pub(crate) fn status_of(exit: Option<ExitStatus>, runtime: Option<(&str, bool)>) -> Status {
    match (exit, runtime) {
        (Some(_), _) | (None, None) => Status::Stopped,
        (None, Some((_, false))) => Status::Stopped,
        (None, Some(("creating" | "created", true))) => Status::Created,
        (None, Some((_, true))) => Status::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_comes_from_the_exit_record_first_then_the_live_init() {
        assert_eq!(status_of(Some(ExitStatus::Code(0)), Some(("running", true))), Status::Stopped);
        assert_eq!(status_of(None, None), Status::Stopped);
        assert_eq!(status_of(None, Some(("created", true))), Status::Created);
        assert_eq!(status_of(None, Some(("running", true))), Status::Running);
        assert_eq!(status_of(None, Some(("running", false))), Status::Stopped);
    }

    #[test]
    fn transitions() {
        let id = ContainerId::new("c").unwrap();
        assert_eq!(Status::Created.apply(&id, Action::Start).unwrap(), Status::Running);
        assert_eq!(Status::Created.apply(&id, Action::Kill).unwrap(), Status::Created);
        assert_eq!(Status::Running.apply(&id, Action::Kill).unwrap(), Status::Running);
        assert_eq!(Status::Running.apply(&id, Action::Exec).unwrap(), Status::Running);
        assert_eq!(Status::Created.apply(&id, Action::Stream).unwrap(), Status::Created);
        assert_eq!(Status::Running.apply(&id, Action::Stream).unwrap(), Status::Running);
        for (status, action) in [
            (Status::Running, Action::Start),
            (Status::Stopped, Action::Start),
            (Status::Stopped, Action::Kill),
            (Status::Created, Action::Exec),
            (Status::Stopped, Action::Exec),
            (Status::Stopped, Action::Stream),
        ] {
            let err = status.apply(&id, action).unwrap_err();
            assert!(matches!(err, Error::IllegalTransition { status: s, action: a, .. } if s == status && a == action));
        }
    }

    #[test]
    fn exit_status_round_trips_as_json() {
        for status in [ExitStatus::Code(0), ExitStatus::Code(3), ExitStatus::Signal(9)] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(serde_json::from_str::<ExitStatus>(&json).unwrap(), status);
        }
        assert!(ExitStatus::Code(0).success() && !ExitStatus::Signal(9).success());
    }
}

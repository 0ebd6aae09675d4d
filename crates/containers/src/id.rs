//! Container ids: the one name a container has on disk (state dir, bundle dir, cgroup).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A container id: 1 to 64 characters from `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
///
/// The id becomes a directory name and a cgroup name, so it can never hold a `/`, be
/// `..`, or look like a command-line flag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

impl ContainerId {
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        let valid_chars = id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        let valid_start = !id.starts_with('.') && !id.starts_with('-');
        if id.is_empty() || id.len() > 64 || !valid_chars || !valid_start {
            return Err(Error::InvalidId(id));
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContainerId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl From<ContainerId> for String {
    fn from(id: ContainerId) -> String {
        id.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_refuses_paths_and_flags() {
        for good in ["a", "app-1_web.0", &"x".repeat(64)] {
            assert_eq!(ContainerId::new(good).unwrap().as_str(), good);
        }
        for bad in ["", ".", "..", "-rf", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(matches!(ContainerId::new(bad), Err(Error::InvalidId(_))), "{bad:?} must be refused");
        }
    }
}

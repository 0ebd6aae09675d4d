//! Where a runtime keeps its files. Shared by the async side and the helper so both
//! agree on every path.
//!
//! ```text
//! ROOT/state/ID/                 libcontainer's state (state.json, config, notify socket)
//! ROOT/containers/ID/spec.json   the ContainerSpec (its presence: the container is known)
//! ROOT/containers/ID/bundle/config.json   the OCI runtime spec (its seccomp profile left out)
//! ROOT/containers/ID/bundle/seccomp.bpf    the profile, compiled (seccomp_bpf)
//! ROOT/containers/ID/stdout, stderr       the main process's output
//! ROOT/containers/ID/helper.log           the keeper's own diagnostics
//! ROOT/containers/ID/keeper.pid           the process that waits for the main process
//! ROOT/containers/ID/exit.json            how the main process ended (written once)
//! ROOT/containers/ID/processes/PROC/       one exec'd process: process.json (its OCI
//!     process), stdout, stderr, exit.json, keeper.pid, helper.log, control (a FIFO)
//! ROOT/containers/ID/network.json         what networking gave it (address, ports)
//! ROOT/containers/ID/pasta.pid            a rootless container's user-mode network process
//! /run/hearth/network/BRIDGE/allocations.json   addresses and host ports in use on the
//!     bridge by every runtime (+ its lock; see network::alloc)
//! ```

use std::path::{Path, PathBuf};

use crate::id::ContainerId;
use crate::process::ProcessId;

#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// libcontainer's root path (`with_root_path`).
    pub fn state_root(&self) -> PathBuf {
        self.root.join("state")
    }

    /// libcontainer's directory for one container.
    pub fn state_dir(&self, id: &ContainerId) -> PathBuf {
        self.state_root().join(id.as_str())
    }

    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    pub fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.containers().join(id.as_str())
    }

    pub fn spec_file(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("spec.json")
    }

    pub fn bundle(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("bundle")
    }

    pub fn stdout(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("stdout")
    }

    pub fn stderr(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("stderr")
    }

    pub fn helper_log(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("helper.log")
    }

    pub fn keeper_pid(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("keeper.pid")
    }

    pub fn exit_file(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("exit.json")
    }

    /// The directory holding every exec'd process of a container.
    pub fn processes(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("processes")
    }

    /// One exec'd process's directory (see the module doc for what is in it).
    pub fn process_dir(&self, id: &ContainerId, process: &ProcessId) -> PathBuf {
        self.processes(id).join(process.as_str())
    }

    pub fn network_file(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("network.json")
    }

    pub fn pasta_pid(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("pasta.pid")
    }
}

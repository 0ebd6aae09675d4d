//! What Hearth asks of a container, before it becomes an OCI runtime spec (`oci`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::network::NetworkSpec;

/// A container as the rest of the platform describes it. Stored beside the bundle so a
/// restarted server knows what each container was made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The root filesystem (from the image store). Must exist and be a directory.
    pub rootfs: PathBuf,
    /// Mount the root filesystem read-only (writes go to `/tmp` and bind mounts only).
    pub rootfs_readonly: bool,
    /// The main process: program and arguments. Not empty.
    pub args: Vec<String>,
    /// `NAME=value` pairs.
    pub env: Vec<String>,
    /// Absolute working directory inside the container.
    pub cwd: String,
    /// The user the main process runs as, inside the container's user namespace.
    pub user: User,
    /// The main process's umask (0o077 keeps files private to their owner).
    pub umask: u32,
    pub hostname: String,
    pub bind_mounts: Vec<BindMount>,
    pub limits: Limits,
    /// `None`: a loopback-only network namespace. `Some`: an address on the runtime's
    /// bridge, NAT, port mappings and an egress allow list (`network`).
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    /// Run a minimal init as the container's PID 1 (`init`): it forwards the signals the
    /// container gets to every process in it, reaps orphans, and exits with the main
    /// process's status (a death by signal N as code 128+N). Without it the main process
    /// is PID 1, which the kernel spares every signal it has no handler for — SIGTERM
    /// included, so a stop waits out its grace period.
    #[serde(default)]
    pub init: bool,
    /// Make the root filesystem an overlay mounted inside the container's mount (and user)
    /// namespace, on `rootfs` (then an empty directory): how a rootless runtime gets one,
    /// since an ordinary user may mount an overlay only in a user namespace it owns.
    #[serde(default)]
    pub overlay: Option<Overlay>,
}

/// Overlayfs layers for a root filesystem mounted by the container itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    /// Read-only layers, top first (overlayfs' `lowerdir` order). At least one.
    pub lower: Vec<PathBuf>,
    /// The writable layer and overlayfs' work directory (same file system, both empty at
    /// first), or `None` for a read-only overlay.
    pub writable: Option<(PathBuf, PathBuf)>,
}

impl ContainerSpec {
    /// A spec with the usual defaults: read-only rootfs, `PATH` set, `/` as cwd, the
    /// unprivileged user 2000:2000 (CF's `vcap`), no bind mounts, no limits.
    pub fn new(rootfs: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self {
            rootfs: rootfs.into(),
            rootfs_readonly: true,
            args,
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
            cwd: "/".into(),
            user: User { uid: 2000, gid: 2000 },
            umask: 0o022,
            hostname: "hearth".into(),
            bind_mounts: Vec::new(),
            limits: Limits::default(),
            network: None,
            init: false,
            overlay: None,
        }
    }
}

/// A user and primary group id as seen inside the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

/// A host path made visible inside the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub read_only: bool,
}

/// Resource limits enforced through cgroups. `None` means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory in bytes. Swap is always off: memory+swap is set to the same value.
    pub memory_bytes: Option<u64>,
    /// Relative CPU share (cgroup v1 `cpu.shares`, 2..=262144; converted to `cpu.weight` on v2).
    pub cpu_shares: Option<u64>,
    /// Maximum number of processes and threads.
    pub pids: Option<i64>,
}

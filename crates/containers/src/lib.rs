//! `hearth-containers`: isolated Linux containers for app instances, tasks and staging
//! (Garden's job). A [`ContainerSpec`] becomes an OCI runtime spec ([`oci`]) with Garden's
//! security floor, and youki's `libcontainer`, embedded, runs it.
//!
//! Invariants:
//! - libcontainer forks, so it runs only in the single-threaded helper process
//!   (`hearth container-helper`, [`helper::main`]), never inside the async [`Runtime`].
//!   The async side writes bundles, spawns helpers, reads state files and cgroup files.
//! - Every container gets a user namespace (its root is host uid 100000 by default, never
//!   host root; a rootless runtime's is the ordinary user running it, [`rootless`]), its own pid, mount, ipc, uts, cgroup and network namespaces (loopback
//!   only), Garden's 14 capabilities as the bounding set (none effective unless the
//!   process is root in the container), `no_new_privileges`, an allow-list seccomp
//!   profile whose default is `EPERM`, masked and read-only `/proc` and `/sys` paths and
//!   an explicit `cgroupsPath` (`/<cgroup_parent>/<id>`). There is no option to turn
//!   any of this off.
//! - Everything about a container lives in files under the runtime's root ([`layout`]),
//!   so a restarted server finds its containers again; the keeper process that waits for
//!   a container's main process outlives the server.
//! - A rootfs is mounted from inside the user namespace, so every directory above it must
//!   be searchable by "others" (o+x); `create` refuses one that is not.
//! - A failed `create` removes what it made; `destroy` releases processes (exec'd ones
//!   and their keepers too), cgroups, libcontainer state and the bundle, and is safe to
//!   repeat.
//! - An exec'd process (`Runtime::exec`) gets the same floor as the main process: it
//!   joins every namespace of the container including the user namespace, its cgroup,
//!   its seccomp profile, no_new_privileges, and only fds 0-2. Each has a keeper that
//!   outlives the server; its output and exit status are files, so `attach` works after
//!   a restart (stdin does not survive one).
//! - Streaming in and out happens inside the container's mount namespace and root; a
//!   tar entry that would land outside the destination is refused.
//! - A container with `network` set gets a veth on the runtime's bridge, an address,
//!   NAT, port mappings and an egress allow list ([`network`]); destroy releases them.
//! - The crate knows nothing of HTTP, the store, images or the scheduler.

mod bundle;
pub mod cgroup;
mod error;
mod exec;
pub mod helper;
mod helper_exec;
mod helper_stream;
mod id;
mod init;
mod keeper;
pub mod layout;
pub mod network;
pub mod oci;
mod process;
pub mod rootless;
mod runtime;
pub mod seccomp;
pub mod seccomp_bpf;
mod spec;
mod state;
mod stream;
mod zygote;

pub use error::Error;
pub use id::ContainerId;
pub use network::{NetworkConfig, NetworkInfo, NetworkSpec};
pub use oci::{IdMap, Owner, Placement};
pub use process::{OutputStream, Process, ProcessId, ProcessSpec, ProcessStdin, WindowSize};
pub use runtime::{ContainerInfo, ProcessResult, Runtime, RuntimeConfig};
pub use spec::{BindMount, ContainerSpec, Limits, Overlay, User};
pub use state::{Action, ExitStatus, Status};
pub use stream::TarStream;

//! The image store (what GrootFS is to Garden): pulls OCI and Docker v2 images from registries,
//! keeps their layers in a content-addressed store on disk shared by every image, and builds one
//! overlayfs root filesystem per container from a stack of layers.
//!
//! Layout of a store directory (`Store::open`):
//!
//! ```text
//! blobs/sha256/<hex>          manifests and image configs, exactly the bytes the registry sent
//! layers/sha256/<diff-id>/    one unpacked layer: `diff/` (overlay format) and `layer.json`
//! images/<hex>.json           one record per pulled reference (manifest, config, layers, runtime config)
//! disk-templates/             formatted empty ext4 images, one per disk limit size, copied for each limited rootfs
//! pins/<name>.json            layers `gc` never removes (a stack, an image)
//! rootfs/<id>/rootfs.json     one container's record: its layers, where its writable layer is, its disk limit
//! rootfs/<id>/                its `upper/` and `work/` (or `disk.img` mounted at `disk/` holding them,
//!                             when it has a disk limit) and `merged/` (the mount point)
//! tmp/                        downloads and unpacks in progress; emptied when the store opens
//! ```
//!
//! Invariants:
//! - A blob or layer directory is only ever seen complete and verified: it is written under `tmp/`
//!   and renamed into place after its sha256 (compressed digest and uncompressed diff id) matched.
//!   A failed or refused pull removes what it wrote.
//! - Layers are keyed by their diff id (the digest of the uncompressed tar), so the same content
//!   compressed with gzip or zstd is stored once; one process downloads a given layer once, however
//!   many pulls want it at the same moment.
//! - Unpacking never follows a symlink and never writes outside the layer directory: `..` paths,
//!   entries or hard links through symlinks are refused; device nodes and overlay xattrs in a layer
//!   are dropped. OCI whiteouts become overlayfs whiteouts (0/0 character devices, opaque xattr), so
//!   overlayfs applies them when layers are combined.
//! - Layers are read-only once stored; containers write only to their own `upper/`.
//! - Destroying a root filesystem is idempotent and unmounts everything under it before removing a
//!   single file; a limited root filesystem's own file system and loop device go with it.
//! - `gc` never removes a layer named by a root filesystem's record, a pin, or a lease held by a
//!   pull or a root filesystem being made; it removes the least recently used first.
//!
//! This crate knows nothing of the container runtime, the scheduler or the platform's HTTP API.

mod clients;
mod config;
mod digest;
mod disk;
mod error;
mod extract;
mod feed;
mod gc;
mod metrics;
mod mounts;
mod progress;
mod pull;
mod rootfs;
mod stack;
mod store;
mod userns;

pub use config::RuntimeConfig;
pub use digest::{Digest, Sha256Writer};
pub use disk::{DiskLimit, DiskLimitBackend, DiskUsage, MIN_DISK_LIMIT};
pub use error::Error;
pub use extract::{OverlayXattrs, UnpackReport, unpack_layer, unpack_layer_with};
pub use gc::{GcReport, Pin};
pub use metrics::Metrics;
pub use mounts::mounts_under;
pub use progress::{Progress, PullEvent};
pub use pull::{Credentials, Platform, PullOptions, Puller, RegistryConfig};
pub use rootfs::{ReadOnlyBind, Rootfs, RootfsSpec, UnmountedOverlay};
pub use stack::Stack;
pub use store::{ImageLayer, ImageRecord, LayerRecord, Store, StoreConfig};
pub use userns::{HELPER_COMMAND, UserNamespace, helper_main};

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

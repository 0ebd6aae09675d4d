//! The one error type of the image store. Each variant carries the reference, digest or path that
//! lets an operator act on it.

use std::path::PathBuf;

use crate::Digest;

/// What went wrong in a pull, the layer store or a root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not a sha256 digest")]
    BadDigest(String),
    #[error("{reference:?} is not an image reference: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("registry request for {reference} failed: {source}")]
    Registry {
        reference: String,
        #[source]
        source: Box<oci_client::errors::OciDistributionError>,
    },
    #[error("content of {what} has digest {actual}, expected {expected}")]
    DigestMismatch { what: String, expected: Digest, actual: Digest },
    #[error("{what} is {actual} bytes, the descriptor says {expected}")]
    SizeMismatch { what: String, expected: u64, actual: u64 },
    #[error("{reference}: unsupported media type {media_type}")]
    UnsupportedMediaType { reference: String, media_type: String },
    #[error("{reference}: no manifest for platform {platform} in the index")]
    NoMatchingPlatform { reference: String, platform: String },
    #[error("{what} is malformed: {reason}")]
    Malformed { what: String, reason: String },
    #[error("layer refused: entry {entry:?} {reason}")]
    HostileLayer { entry: String, reason: &'static str },
    #[error("layer {0} is not in the store")]
    MissingLayer(Digest),
    #[error("image {0:?} is not in the store")]
    MissingImage(String),
    #[error("{0:?} is not a valid root filesystem id (letters, digits, '-', '_', '.'; at most 128)")]
    BadRootfsId(String),
    #[error("root filesystem {0:?} already exists")]
    RootfsExists(String),
    #[error("a disk limit of {bytes} bytes is too small (at least {min})")]
    BadDiskLimit { bytes: u64, min: u64 },
    #[error("cannot give the writable layer its own file system: {0}")]
    DiskSetup(String),
    #[error("root filesystem {0:?} does not exist")]
    MissingRootfs(String),
    #[error("{0:?} is not a valid pin name (letters, digits, '-', '_', '.'; at most 128)")]
    BadPinName(String),
    #[error("store path {0} cannot be used in overlay mount options (',', ':' or '\\')")]
    UnusablePath(PathBuf),
    #[error("{op} {path} failed: {source}")]
    Mount { op: &'static str, path: PathBuf, source: rustix::io::Errno },
    #[error("{path} is still mounted after unmounting; refusing to remove it")]
    StillMounted { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rootless store: {0}")]
    Rootless(String),
    #[error("background task failed: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn hostile(entry: &std::path::Path, reason: &'static str) -> Error {
        Error::HostileLayer { entry: entry.display().to_string(), reason }
    }
}

//! The crate's one error type. Every variant says what a user can do about it; `Error::kind`
//! tells the HTTP edge which status to answer (413, 422, 404 or 500) without it matching variants.

use std::path::PathBuf;

/// How the API should answer an error: the edge maps these to CF's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is over a size limit (413 Payload Too Large).
    TooLarge,
    /// The input is refused as it is (422 CF-UnprocessableEntity).
    Unprocessable,
    /// The blob is not in the store (404).
    NotFound,
    /// The store itself failed (500; log the cause).
    Internal,
}

/// Everything that can go wrong in the blobstore, its archives and the resource cache.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{key:?} is not a valid key in {namespace}: expected {expected}")]
    BadKey { namespace: &'static str, key: String, expected: &'static str },
    #[error("no blob {key} in {namespace}")]
    NotFound { namespace: &'static str, key: String },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object store {op} {key}: {source}")]
    ObjectStore {
        op: &'static str,
        key: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("S3 configuration: {0}")]
    S3Config(String),
    #[error("reading the upload: {0}")]
    Read(#[source] std::io::Error),

    #[error("the archive is {size} bytes, over the limit of {limit} bytes")]
    ArchiveTooLarge { size: u64, limit: u64 },
    #[error("the archive unpacks to more than {limit} bytes (a zip bomb?); nothing was kept")]
    UnpackedTooLarge { limit: u64 },
    #[error("the archive has more than {limit} entries; nothing was kept")]
    TooManyEntries { limit: u64 },
    #[error("the archive is not a valid {format}: {reason}")]
    BadArchive { format: &'static str, reason: String },
    #[error("archive entry {name:?} {reason}; nothing was kept")]
    UnsafeEntry { name: String, reason: &'static str },
    #[error("archive entry {name:?} is a symlink to {target:?}, which leaves the app directory; nothing was kept")]
    SymlinkEscapes { name: String, target: String },
    #[error(
        "archive entry {name:?} is a hard link to {target:?}, which is not a file extracted before it; nothing was kept"
    )]
    BadHardlink { name: String, target: String },
    #[error("archive entry {name:?} is a {kind}; only files, directories and links are allowed; nothing was kept")]
    SpecialFile { name: String, kind: &'static str },
    #[error("{} already exists: extraction needs a new directory", path.display())]
    DestinationExists { path: PathBuf },

    #[error("resource {path:?} (sha1 {sha1}) is not in the resource cache: upload it with the package")]
    ResourceNotCached { sha1: String, path: String },
    #[error("resource {path:?}: {reason}")]
    BadResource { path: String, reason: String },
}

impl Error {
    /// Which HTTP answer fits this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::TooLarge { .. } | Error::ArchiveTooLarge { .. } | Error::UnpackedTooLarge { .. } => {
                ErrorKind::TooLarge
            }
            Error::BadKey { .. }
            | Error::TooManyEntries { .. }
            | Error::BadArchive { .. }
            | Error::UnsafeEntry { .. }
            | Error::SymlinkEscapes { .. }
            | Error::BadHardlink { .. }
            | Error::SpecialFile { .. }
            | Error::ResourceNotCached { .. }
            | Error::BadResource { .. }
            | Error::Read(_) => ErrorKind::Unprocessable,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Io { .. } | Error::ObjectStore { .. } | Error::S3Config(_) | Error::DestinationExists { .. } => {
                ErrorKind::Internal
            }
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

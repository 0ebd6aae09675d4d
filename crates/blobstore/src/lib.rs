//! The blobstore (what CF's bits service and Cloud Controller's blobstore are): packages, droplets,
//! buildpacks, build caches and the resource cache, stored content-addressed in namespaces on a
//! local directory (the default) or an S3-compatible store, behind one `BlobStore` type.
//!
//! - Puts stream (never a whole body in memory), hash SHA-256 and SHA-1 as they go, and refuse
//!   past a size limit storing nothing. A blob is only visible complete.
//! - `archive` extracts app and buildpack zips and droplet tgzs safely into a new directory
//!   (nothing leaves it, no device files, bombs and oversize input refused, a failure removes
//!   everything) and creates zips and tgzs of a directory.
//! - `resources` is `POST /v3/resource_matches` and package assembly from an upload plus
//!   already-cached files.
//!
//! It knows nothing of HTTP, the CF wire format or the database: the API maps `Error::kind` to
//! 413/422/404 and its JSON to and from `resources::Resource`.

pub mod archive;
mod error;
mod local;
mod namespace;
pub mod resources;
mod s3;
mod store;
mod stream;

pub use error::{Error, ErrorKind, Result};
pub use local::LocalStore;
pub use namespace::{Blob, Digests, Namespace};
pub use s3::{S3Config, S3Store};
pub use store::{BlobStore, BlobStoreConfig};
pub use stream::BlobReader;

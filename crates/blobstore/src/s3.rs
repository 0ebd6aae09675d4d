//! The S3-compatible back end (object_store's `AmazonS3`: SigV4, retries, multipart uploads).
//!
//! Keys are `<namespace>/<key>`. A put streams into `tmp/<uuid>` through a `BufWriter` (one PUT
//! below `PART_SIZE`, a multipart upload of `PART_SIZE` parts above it), then copies the object
//! to its content address and deletes the temp object; past the limit the upload is aborted and
//! nothing is stored. A put whose content is already stored skips the copy.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::namespace::{Blob, Namespace};
use crate::stream::{BlobReader, copy_hashing};

/// Bytes buffered before a put turns into a multipart upload, and the size of each part
/// (S3's minimum part is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Where an S3-compatible store is and how to sign for it. `Debug` leaves the secret out.
#[derive(Clone)]
pub struct S3Config {
    /// `https://host:port` of an S3-compatible server; `None` for AWS itself.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    pub path_style: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("path_style", &self.path_style)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct S3Store {
    store: Arc<AmazonS3>,
    bucket: String,
}

fn object_error(op: &'static str, key: &ObjectPath) -> impl FnOnce(object_store::Error) -> Error {
    let key = key.to_string();
    move |source| Error::ObjectStore { op, key, source: Box::new(source) }
}

impl S3Store {
    /// Builds the client; nothing is sent until the first request.
    pub fn new(config: &S3Config) -> Result<S3Store> {
        if config.bucket.is_empty() {
            return Err(Error::S3Config("the bucket name is empty".into()));
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_virtual_hosted_style_request(!config.path_style);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        let store = builder.build().map_err(|e| Error::S3Config(e.to_string()))?;
        Ok(S3Store { store: Arc::new(store), bucket: config.bucket.clone() })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn path(ns: Namespace, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{}/{key}", ns.as_str()))
    }

    pub(crate) async fn put_stream(
        &self,
        ns: Namespace,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        limit: u64,
    ) -> Result<Blob> {
        let tmp = ObjectPath::from(format!("tmp/{}", uuid::Uuid::new_v4()));
        let store: Arc<dyn ObjectStore> = self.store.clone();
        let mut writer = BufWriter::with_capacity(store, tmp.clone(), PART_SIZE).with_max_concurrency(2);
        let copied = copy_hashing(reader, &mut writer, limit, |e| Error::ObjectStore {
            op: "uploading",
            key: tmp.to_string(),
            source: Box::new(object_store::Error::Generic { store: "S3", source: Box::new(e) }),
        })
        .await;
        let digests = match copied {
            Ok(d) => d,
            Err(e) => {
                // Nothing was completed: a single PUT has not been sent, a multipart upload is aborted.
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(key = %tmp, error = %abort, "aborting a refused upload failed");
                }
                return Err(e);
            }
        };
        writer.shutdown().await.map_err(|e| Error::ObjectStore {
            op: "completing",
            key: tmp.to_string(),
            source: Box::new(object_store::Error::Generic { store: "S3", source: Box::new(e) }),
        })?;
        let blob = Blob::new(ns, digests);
        let dest = Self::path(ns, &blob.key);
        let placed = match self.store.head(&dest).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => {
                self.store.copy(&tmp, &dest).await.map_err(object_error("copying to", &dest))
            }
            Err(e) => Err(object_error("checking", &dest)(e)),
        };
        if let Err(e) = self.store.delete(&tmp).await {
            tracing::warn!(key = %tmp, error = %e, "removing a temp object failed");
        }
        placed.map(|()| blob)
    }

    /// Stores content whose digests are already known (`put_file` hashed it) straight at its
    /// key: one PUT (or multipart upload) instead of temp, copy and delete. Completed only if
    /// the bytes still hash to `expected`; otherwise the upload is aborted and nothing is stored.
    pub(crate) async fn put_known(
        &self,
        expected: &Blob,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        changed: impl Fn() -> Error,
    ) -> Result<Blob> {
        let dest = Self::path(expected.namespace, &expected.key);
        let store: Arc<dyn ObjectStore> = self.store.clone();
        let mut writer = BufWriter::with_capacity(store, dest.clone(), PART_SIZE).with_max_concurrency(2);
        let copied = copy_hashing(reader, &mut writer, u64::MAX, |e| Error::ObjectStore {
            op: "uploading",
            key: dest.to_string(),
            source: Box::new(object_store::Error::Generic { store: "S3", source: Box::new(e) }),
        })
        .await;
        let fine = matches!(&copied, Ok(d) if d.sha256 == expected.sha256 && d.sha1 == expected.sha1 && d.size == expected.size);
        if !fine {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(key = %dest, error = %abort, "aborting an upload failed");
            }
            return Err(copied.err().unwrap_or_else(changed));
        }
        writer.shutdown().await.map_err(|e| Error::ObjectStore {
            op: "completing",
            key: dest.to_string(),
            source: Box::new(object_store::Error::Generic { store: "S3", source: Box::new(e) }),
        })?;
        Ok(expected.clone())
    }

    pub(crate) async fn get(&self, ns: Namespace, key: &str) -> Result<BlobReader> {
        let path = Self::path(ns, key);
        let result = match self.store.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::NotFound { namespace: ns.as_str(), key: key.to_string() });
            }
            Err(e) => return Err(object_error("reading", &path)(e)),
        };
        let stream = result.into_stream().map_err(std::io::Error::other);
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }

    pub(crate) async fn size(&self, ns: Namespace, key: &str) -> Result<Option<u64>> {
        let path = Self::path(ns, key);
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(object_error("checking", &path)(e)),
        }
    }

    pub(crate) async fn delete(&self, ns: Namespace, key: &str) -> Result<()> {
        let path = Self::path(ns, key);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(object_error("deleting", &path)(e)),
        }
    }

    pub(crate) async fn list(&self, ns: Namespace) -> Result<Vec<String>> {
        let prefix = ObjectPath::from(ns.as_str());
        let mut keys = Vec::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(object_error("listing", &prefix))?;
            if let Some(name) = meta.location.filename().filter(|k| ns.check_key(k).is_ok()) {
                keys.push(name.to_string());
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Objects under `tmp/` (puts in progress or refused): tests check none are left.
    pub async fn temp_objects(&self) -> Result<usize> {
        let prefix = ObjectPath::from("tmp");
        let listed: Vec<_> =
            self.store.list(Some(&prefix)).try_collect().await.map_err(object_error("listing", &prefix))?;
        Ok(listed.len())
    }
}

//! `BlobStore`: the one type the API uses, over the local and the S3 back end.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncSeekExt};

use crate::error::{Error, Result};
use crate::local::{LocalStore, sync_dir};
use crate::namespace::{Blob, Namespace};
use crate::s3::{S3Config, S3Store};
use crate::stream::{BlobReader, copy_hashing};

/// Which back end to open.
#[derive(Debug, Clone)]
pub enum BlobStoreConfig {
    /// A directory (the default: `DATA_DIR/blobs`).
    Local {
        root: PathBuf,
    },
    S3(S3Config),
}

/// Content-addressed blobs in namespaces. Cheap to clone (share one per server).
#[derive(Debug, Clone)]
pub enum BlobStore {
    Local(LocalStore),
    S3(S3Store),
}

impl BlobStore {
    pub fn open(config: &BlobStoreConfig) -> Result<BlobStore> {
        match config {
            BlobStoreConfig::Local { root } => Ok(BlobStore::Local(LocalStore::open(root)?)),
            BlobStoreConfig::S3(s3) => Ok(BlobStore::S3(S3Store::new(s3)?)),
        }
    }

    /// Stores what `reader` yields, streaming, and answers its key and digests. More than
    /// `limit` bytes is `Error::TooLarge` and stores nothing.
    pub async fn put_stream<R>(&self, ns: Namespace, mut reader: R, limit: u64) -> Result<Blob>
    where
        R: AsyncRead + Unpin + Send,
    {
        match self {
            BlobStore::Local(l) => l.put_stream(ns, &mut reader, limit).await,
            BlobStore::S3(s) => s.put_stream(ns, &mut reader, limit).await,
        }
    }

    /// Stores a file's content (no limit: the caller made the file). The file is hashed first:
    /// content the store already has is not sent again (one `HEAD` on S3 instead of an upload).
    pub async fn put_file(&self, ns: Namespace, path: &Path) -> Result<Blob> {
        let mut file = tokio::fs::File::open(path).await.map_err(Error::io("opening", path))?;
        let digests =
            copy_hashing(&mut file, &mut tokio::io::sink(), u64::MAX, |e| Error::io("hashing", path)(e)).await?;
        let blob = Blob::new(ns, digests);
        if self.size(ns, &blob.key).await? == Some(blob.size) {
            return Ok(blob);
        }
        file.rewind().await.map_err(Error::io("reading", path))?;
        match self {
            BlobStore::Local(l) => l.put_stream(ns, &mut file, u64::MAX).await,
            BlobStore::S3(s) => {
                let changed =
                    || Error::io("storing", path)(std::io::Error::other("the file changed while it was stored"));
                s.put_known(&blob, &mut file, changed).await
            }
        }
    }

    /// Stores a file's content under a key the caller chose (a build cache under its app's
    /// guid), replacing what the key held.
    pub async fn put_file_as(&self, ns: Namespace, key: &str, path: &Path) -> Result<Blob> {
        ns.check_key(key)?;
        let mut file = tokio::fs::File::open(path).await.map_err(Error::io("opening", path))?;
        match self {
            BlobStore::Local(l) => l.put_keyed(ns, Some(key), &mut file, u64::MAX).await,
            BlobStore::S3(s) => {
                let digests =
                    copy_hashing(&mut file, &mut tokio::io::sink(), u64::MAX, |e| Error::io("hashing", path)(e))
                        .await?;
                let mut blob = Blob::new(ns, digests);
                blob.key = key.to_string();
                file.rewind().await.map_err(Error::io("reading", path))?;
                let changed =
                    || Error::io("storing", path)(std::io::Error::other("the file changed while it was stored"));
                s.put_known(&blob, &mut file, changed).await
            }
        }
    }

    /// The blob's bytes as a stream; `Error::NotFound` if there is none.
    pub async fn get(&self, ns: Namespace, key: &str) -> Result<BlobReader> {
        ns.check_key(key)?;
        match self {
            BlobStore::Local(l) => l.get(ns, key).await,
            BlobStore::S3(s) => s.get(ns, key).await,
        }
    }

    /// Writes the blob to `dest` (through a temp file beside it, renamed when complete).
    pub async fn get_to_file(&self, ns: Namespace, key: &str, dest: &Path) -> Result<u64> {
        let mut reader = self.get(ns, key).await?;
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name =
            dest.file_name().ok_or_else(|| Error::io("writing", dest)(std::io::ErrorKind::InvalidInput.into()))?;
        let tmp = dir.join(format!(".{}.{}", name.to_string_lossy(), uuid::Uuid::new_v4()));
        let written = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(Error::io("creating", &tmp))?;
            let n = tokio::io::copy(&mut reader, &mut file).await.map_err(Error::io("writing", &tmp))?;
            file.sync_all().await.map_err(Error::io("syncing", &tmp))?;
            tokio::fs::rename(&tmp, dest).await.map_err(Error::io("renaming into", dest))?;
            Ok(n)
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        let n = written?;
        sync_dir(dir).await?;
        Ok(n)
    }

    /// The blob's size, `None` if it is not stored.
    pub async fn size(&self, ns: Namespace, key: &str) -> Result<Option<u64>> {
        ns.check_key(key)?;
        match self {
            BlobStore::Local(l) => l.size(ns, key).await,
            BlobStore::S3(s) => s.size(ns, key).await,
        }
    }

    pub async fn exists(&self, ns: Namespace, key: &str) -> Result<bool> {
        Ok(self.size(ns, key).await?.is_some())
    }

    /// Removes the blob; removing one that is not there succeeds.
    pub async fn delete(&self, ns: Namespace, key: &str) -> Result<()> {
        ns.check_key(key)?;
        match self {
            BlobStore::Local(l) => l.delete(ns, key).await,
            BlobStore::S3(s) => s.delete(ns, key).await,
        }
    }

    /// Every key in the namespace, sorted.
    pub async fn list(&self, ns: Namespace) -> Result<Vec<String>> {
        match self {
            BlobStore::Local(l) => l.list(ns).await,
            BlobStore::S3(s) => s.list(ns).await,
        }
    }
}

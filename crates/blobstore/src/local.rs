//! The local directory back end (the default, under the data dir).
//!
//! Layout: `ROOT/<namespace>/<first two key digits>/<key>`, and `ROOT/tmp/` for puts in progress.
//! A put writes a temp file under `tmp/` (same file system), fsyncs it, renames it onto its key
//! and fsyncs the directory: a blob is only ever seen whole. Two puts of the same content both
//! rename the same bytes onto the same name, which is harmless.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::io::AsyncRead;

use crate::error::{Error, Result};
use crate::namespace::{Blob, Namespace};
use crate::stream::{BlobReader, copy_hashing};

/// Temp files older than this are leftovers of a crash and are removed when a store opens.
const STALE_TMP: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

/// Removes a temp file unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl LocalStore {
    /// Opens (creating) the store at `root` (mode 0700) and removes stale temp files.
    pub fn open(root: &Path) -> Result<LocalStore> {
        use std::os::unix::fs::DirBuilderExt;
        for dir in std::iter::once(root.to_path_buf())
            .chain(Namespace::ALL.iter().map(|ns| root.join(ns.as_str())))
            .chain(std::iter::once(root.join("tmp")))
        {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(Error::io("creating", &dir))?;
        }
        let tmp = root.join("tmp");
        for entry in std::fs::read_dir(&tmp).map_err(Error::io("reading", &tmp))?.flatten() {
            let old = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > STALE_TMP);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(LocalStore { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, ns: Namespace, key: &str) -> PathBuf {
        self.root.join(ns.as_str()).join(&key[..2]).join(key)
    }

    pub(crate) async fn put_stream(
        &self,
        ns: Namespace,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        limit: u64,
    ) -> Result<Blob> {
        self.put_keyed(ns, None, reader, limit).await
    }

    /// Stores what `reader` yields under `key` (or its content's key), replacing what was there.
    pub(crate) async fn put_keyed(
        &self,
        ns: Namespace,
        key: Option<&str>,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        limit: u64,
    ) -> Result<Blob> {
        let mut temp = TempFile { path: self.root.join("tmp").join(uuid::Uuid::new_v4().to_string()), keep: false };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp.path)
            .await
            .map_err(Error::io("creating", &temp.path))?;
        let digests = copy_hashing(reader, &mut file, limit, |e| Error::io("writing", &temp.path)(e)).await?;
        file.sync_all().await.map_err(Error::io("syncing", &temp.path))?;
        drop(file);
        let mut blob = Blob::new(ns, digests);
        if let Some(key) = key {
            blob.key = key.to_string();
        }
        let dest = self.path(ns, &blob.key);
        let dir = dest.parent().expect("a key has a directory");
        tokio::fs::create_dir_all(dir).await.map_err(Error::io("creating", dir))?;
        tokio::fs::rename(&temp.path, &dest).await.map_err(Error::io("renaming into", &dest))?;
        temp.keep = true;
        sync_dir(dir).await?;
        Ok(blob)
    }

    pub(crate) async fn get(&self, ns: Namespace, key: &str) -> Result<BlobReader> {
        let path = self.path(ns, key);
        match tokio::fs::File::open(&path).await {
            Ok(f) => Ok(Box::pin(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::NotFound { namespace: ns.as_str(), key: key.to_string() })
            }
            Err(e) => Err(Error::io("opening", path)(e)),
        }
    }

    pub(crate) async fn size(&self, ns: Namespace, key: &str) -> Result<Option<u64>> {
        let path = self.path(ns, key);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", path)(e)),
        }
    }

    pub(crate) async fn delete(&self, ns: Namespace, key: &str) -> Result<()> {
        let path = self.path(ns, key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing", path)(e)),
        }
    }

    pub(crate) async fn list(&self, ns: Namespace) -> Result<Vec<String>> {
        let dir = self.root.join(ns.as_str());
        let mut keys = Vec::new();
        let mut fans = tokio::fs::read_dir(&dir).await.map_err(Error::io("reading", &dir))?;
        while let Some(fan) = fans.next_entry().await.map_err(Error::io("reading", &dir))? {
            let mut entries = tokio::fs::read_dir(fan.path()).await.map_err(Error::io("reading", fan.path()))?;
            while let Some(e) = entries.next_entry().await.map_err(Error::io("reading", fan.path()))? {
                if let Some(name) = e.file_name().to_str().filter(|k| ns.check_key(k).is_ok()) {
                    keys.push(name.to_string());
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}

pub(crate) async fn sync_dir(dir: &Path) -> Result<()> {
    let d = tokio::fs::File::open(dir).await.map_err(Error::io("opening", dir))?;
    d.sync_all().await.map_err(Error::io("syncing", dir))
}

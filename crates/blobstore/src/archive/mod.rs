//! Archives: safe extraction of app and buildpack zips and droplet tgzs into a new directory,
//! and zips and tgzs of a directory.
//!
//! Extraction refuses entries that would leave the directory (`..`, absolute names, symlinks
//! resolving outside, hard links to anything but a file extracted before), device files, fifos
//! and sockets, more than `Limits::max_entries` entries, more than `Limits::max_unpacked_bytes`
//! bytes written (counted as written, not as declared) and archives over
//! `Limits::max_archive_bytes`. File modes are kept (exec bits included; setuid, setgid and
//! sticky bits dropped). A failed extraction removes the directory it made. These functions
//! block: call them from `spawn_blocking`.

pub(crate) mod confine;
mod create;
mod untar;
mod unzip;

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
// create_new (O_EXCL) never opens through a symlink planted at the name.
use std::path::{Path, PathBuf};

pub use create::{create_tgz, create_zip};

use crate::error::{Error, Result};

/// How much an archive may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The archive file itself (413 past it).
    pub max_archive_bytes: u64,
    /// Bytes of all files written (a zip bomb's ratio does not matter, the output does).
    pub max_unpacked_bytes: u64,
    /// Entries of every kind.
    pub max_entries: u64,
}

impl Limits {
    /// Cloud Controller's package limit of 1 GiB in; 4 GiB and 200,000 entries out.
    pub const DEFAULT: Limits =
        Limits { max_archive_bytes: 1 << 30, max_unpacked_bytes: 4 << 30, max_entries: 200_000 };
}

/// What an extraction wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extracted {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// Extracts a zip (an app's bits, a buildpack) into `dest`, which must not exist yet.
pub fn extract_zip(archive: &Path, dest: &Path, limits: &Limits) -> Result<Extracted> {
    extract(archive, dest, limits, unzip::extract)
}

/// Extracts a gzipped tar (a droplet) into `dest`, which must not exist yet.
pub fn extract_tgz(archive: &Path, dest: &Path, limits: &Limits) -> Result<Extracted> {
    extract(archive, dest, limits, untar::extract)
}

fn extract(
    archive: &Path,
    dest: &Path,
    limits: &Limits,
    each: fn(std::fs::File, &mut Extractor) -> Result<()>,
) -> Result<Extracted> {
    let file = std::fs::File::open(archive).map_err(Error::io("opening", archive))?;
    let size = file.metadata().map_err(Error::io("reading", archive))?.len();
    if size > limits.max_archive_bytes {
        return Err(Error::ArchiveTooLarge { size, limit: limits.max_archive_bytes });
    }
    match std::fs::create_dir(dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::DestinationExists { path: dest.to_path_buf() });
        }
        Err(e) => return Err(Error::io("creating", dest)(e)),
    }
    let mut x = Extractor { root: dest.to_path_buf(), limits: *limits, ..Default::default() };
    let result = each(file, &mut x).and_then(|()| x.finish());
    match result {
        Ok(()) => Ok(x.done),
        Err(e) => {
            if let Err(rm) = remove_all(dest) {
                tracing::warn!(dest = %dest.display(), error = %rm, "removing a failed extraction");
            }
            Err(e)
        }
    }
}

/// Removes a tree, first making its directories writable (an archive may have made them 0500).
fn remove_all(dir: &Path) -> std::io::Result<()> {
    fn open_up(dir: &Path) {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
    open_up(dir);
    std::fs::remove_dir_all(dir)
}

/// One extraction in progress: counts, writes confined, and checks links at the end.
#[derive(Default)]
pub(crate) struct Extractor {
    root: PathBuf,
    limits: Limits,
    done: Extracted,
    entries: u64,
    symlinks: Vec<(String, PathBuf)>,
    dir_modes: Vec<(PathBuf, u32)>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

impl Extractor {
    /// Counts one more entry of any kind.
    pub(crate) fn entry(&mut self) -> Result<()> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(Error::TooManyEntries { limit: self.limits.max_entries });
        }
        Ok(())
    }

    pub(crate) fn max_entries(&self) -> u64 {
        self.limits.max_entries
    }

    pub(crate) fn dir(&mut self, name: &str, mode: u32) -> Result<()> {
        let rel = confine::relative(name)?;
        if rel.as_os_str().is_empty() {
            return Ok(());
        }
        let path = confine::make_parents(&self.root, &rel, name)?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::UnsafeEntry {
                    name: name.to_string(),
                    reason: "is a directory over a file or link",
                });
            }
            Err(_) => {
                std::fs::create_dir(&path).map_err(Error::io("creating", &path))?;
                self.done.dirs += 1;
            }
        }
        self.dir_modes.push((path, (mode & 0o777) | 0o700));
        Ok(())
    }

    pub(crate) fn file(&mut self, name: &str, mode: u32, content: &mut dyn Read) -> Result<()> {
        let rel = confine::relative(name)?;
        if rel.as_os_str().is_empty() {
            return Err(Error::UnsafeEntry { name: name.to_string(), reason: "is a file without a name" });
        }
        let path = confine::make_parents(&self.root, &rel, name)?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                return Err(Error::UnsafeEntry { name: name.to_string(), reason: "is a file over a directory" });
            }
            Ok(_) => std::fs::remove_file(&path).map_err(Error::io("replacing", &path))?,
            Err(_) => {}
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(Error::io("creating", &path))?;
        let room = self.limits.max_unpacked_bytes - self.done.bytes;
        let mut written = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // Read errors are the archive's fault (corrupt data, bad CRC); write errors are ours.
            let n = content
                .read(&mut buf)
                .map_err(|e| Error::BadArchive { format: "archive", reason: format!("{name}: {e}") })?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > room {
                return Err(Error::UnpackedTooLarge { limit: self.limits.max_unpacked_bytes });
            }
            out.write_all(&buf[..n]).map_err(Error::io("writing", &path))?;
        }
        self.done.bytes += written;
        self.done.files += 1;
        out.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(Error::io("setting the mode of", &path))?;
        Ok(())
    }

    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        let rel = confine::relative(name)?;
        let escapes = || Error::SymlinkEscapes { name: name.to_string(), target: target.to_string() };
        if rel.as_os_str().is_empty() || target.is_empty() || target.contains('\0') || target.starts_with('/') {
            return Err(escapes());
        }
        let path = confine::make_parents(&self.root, &rel, name)?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                return Err(Error::UnsafeEntry { name: name.to_string(), reason: "is a link over a directory" });
            }
            Ok(_) => std::fs::remove_file(&path).map_err(Error::io("replacing", &path))?,
            Err(_) => {}
        }
        std::os::unix::fs::symlink(target, &path).map_err(Error::io("creating the link", &path))?;
        self.done.symlinks += 1;
        self.symlinks.push((name.to_string(), rel));
        Ok(())
    }

    /// A hard link (tar): its target must be a regular file this archive already wrote.
    pub(crate) fn hardlink(&mut self, name: &str, target: &str) -> Result<()> {
        let bad = || Error::BadHardlink { name: name.to_string(), target: target.to_string() };
        let rel = confine::relative(name)?;
        let target_rel = confine::relative(target).map_err(|_| bad())?;
        if rel.as_os_str().is_empty() || target_rel.as_os_str().is_empty() {
            return Err(bad());
        }
        let source = self.root.join(&target_rel);
        let is_file = std::fs::symlink_metadata(&source).is_ok_and(|m| m.file_type().is_file());
        if !is_file || !confine::real_parents(&self.root, &target_rel) {
            return Err(bad());
        }
        let path = confine::make_parents(&self.root, &rel, name)?;
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(Error::UnsafeEntry { name: name.to_string(), reason: "is a hard link over an existing entry" });
        }
        std::fs::hard_link(&source, &path).map_err(Error::io("linking", &path))?;
        self.done.files += 1;
        Ok(())
    }

    /// After the last entry: every symlink must resolve inside the tree (links made later can
    /// change where an earlier one points), then directories get their modes.
    fn finish(&mut self) -> Result<()> {
        for (name, rel) in &self.symlinks {
            if confine::resolve_link(&self.root, rel).is_none() {
                let target = std::fs::read_link(self.root.join(rel)).unwrap_or_default();
                return Err(Error::SymlinkEscapes { name: name.clone(), target: target.display().to_string() });
            }
        }
        for (path, mode) in self.dir_modes.iter().rev() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                .map_err(Error::io("setting the mode of", path))?;
        }
        Ok(())
    }
}

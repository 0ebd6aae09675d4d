//! Unpacking one layer tarball into an empty directory, safely, in overlayfs format.
//!
//! Rules (a layer is untrusted input):
//! - Paths are taken relative to the layer root: a leading `/` or `./` is dropped, a `..`
//!   component refuses the layer.
//! - Nothing is ever written through a symlink: every parent of an entry (and of a hard link's
//!   target) is checked with `lstat`; a symlink there refuses the layer. Files are created with
//!   `O_NOFOLLOW | O_EXCL` after removing whatever the same layer put there before. Symlink targets
//!   are stored as they are (absolute ones resolve inside the container's root, never here).
//! - Hard links must point at a file this layer already holds.
//! - Character and block devices are dropped (reported), as are xattrs other than
//!   `security.capability` and `user.*` (a layer must not forge `trusted.overlay.*`).
//! - OCI whiteouts become overlayfs whiteouts: `.wh.NAME` a 0/0 character device `NAME`,
//!   `.wh..wh..opq` the `trusted.overlay.opaque` xattr on its directory; other `.wh..wh.*` names
//!   (aufs bookkeeping) are ignored. A whiteout only hides lower layers: if this layer also has
//!   `NAME`, `NAME` stays, and a directory replacing a whiteout is made opaque.

use std::cell::RefCell;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use tar::EntryType;

use crate::Sha256Writer;
use crate::digest::HashingReader;
use crate::{Digest, Error, Result};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const META_PREFIX: &[u8] = b".wh..wh.";
/// The xattr overlayfs reads (as root) to hide a lower directory's contents.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The same for an overlay mounted with `userxattr` (in a user namespace).
pub(crate) const USER_OPAQUE_XATTR: &str = "user.overlay.opaque";

/// Where the overlay that will combine the layer reads its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayXattrs {
    /// `trusted.overlay.*`: an overlay mounted by root on the host.
    Trusted,
    /// `user.overlay.*`: an overlay mounted with `userxattr` inside a user namespace.
    User,
}

impl OverlayXattrs {
    fn opaque(self) -> &'static str {
        match self {
            OverlayXattrs::Trusted => OPAQUE_XATTR,
            OverlayXattrs::User => USER_OPAQUE_XATTR,
        }
    }
}

/// What unpacking a layer did besides writing files.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct UnpackReport {
    /// The sha256 of the uncompressed tar stream (the layer's diff id).
    pub diff_id: Digest,
    /// Tar entries processed.
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Device nodes that were not created.
    pub dropped_devices: Vec<String>,
    /// Extended attributes that were not applied.
    pub dropped_xattrs: Vec<String>,
    /// `.wh..wh.*` names other than the opaque marker, ignored.
    pub ignored_whiteouts: Vec<String>,
}

impl Default for Digest {
    fn default() -> Self {
        Digest::of(b"")
    }
}

/// Unpacks a layer (plain tar, gzip or zstd, recognised by its first bytes) into `dest`, which
/// must be an empty directory. On error `dest` holds a partial layer: the caller discards it.
pub fn unpack_layer(reader: impl Read, dest: &Path) -> Result<UnpackReport> {
    unpack_layer_with(reader, dest, OverlayXattrs::Trusted)
}

/// [`unpack_layer`] for an overlay that reads its metadata from `xattrs`.
pub fn unpack_layer_with(reader: impl Read, dest: &Path, xattrs: OverlayXattrs) -> Result<UnpackReport> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf().map_err(Error::io(dest))?;
    let decompressed: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(Error::io(dest))?)
    } else {
        Box::new(buffered)
    };
    let mut archive = tar::Archive::new(HashingReader::new(decompressed));
    let entries = archive.entries().map_err(Error::io(dest))?;
    let mut report = Unpacker::new(dest, xattrs, None).run(entries)?;
    report.diff_id = archive.into_inner().finish().map_err(|e| tar_error(dest, e))?;
    Ok(report)
}

/// [`unpack_layer_with`] for an uncompressed tar already in memory. Files are written straight
/// from `tar`, each piece hashed into the diff id just before it is written (so it is read
/// from memory once, and written while still in cache); the rest of the tar is hashed as the
/// entries are read or skipped.
pub(crate) fn unpack_tar_with(tar: &[u8], dest: &Path, xattrs: OverlayXattrs) -> Result<UnpackReport> {
    let hash = Rc::new(RefCell::new(SliceHash { tar, hashed: 0, hash: Sha256Writer::default() }));
    let mut archive = tar::Archive::new(SliceReader { hash: hash.clone(), pos: 0 });
    let entries = archive.entries_with_seek().map_err(Error::io(dest))?;
    let mut report = Unpacker::new(dest, xattrs, Some(hash.clone())).run(entries)?;
    let mut hash = hash.borrow_mut();
    hash.advance_to(tar.len());
    report.diff_id = std::mem::take(&mut hash.hash).finish();
    Ok(report)
}

/// An in-memory tar and how far into it its digest has got: every byte is hashed once, in order.
struct SliceHash<'a> {
    tar: &'a [u8],
    hashed: usize,
    hash: Sha256Writer,
}

impl SliceHash<'_> {
    /// Hashes the bytes up to `end` not hashed yet.
    fn advance_to(&mut self, end: usize) {
        let end = end.min(self.tar.len());
        if end > self.hashed {
            self.hash.update(&self.tar[self.hashed..end]);
            self.hashed = end;
        }
    }
}

/// Reads (and skips forward through) an in-memory tar, hashing what it passes.
struct SliceReader<'a> {
    hash: Rc<RefCell<SliceHash<'a>>>,
    pos: usize,
}

impl Read for SliceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut hash = self.hash.borrow_mut();
        let rest = &hash.tar[self.pos.min(hash.tar.len())..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        hash.advance_to(self.pos);
        Ok(n)
    }
}

impl Seek for SliceReader<'_> {
    /// Forward only (the tar reader skips the contents it was not asked for), and not past the end.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let mut hash = self.hash.borrow_mut();
        let target = match to {
            SeekFrom::Current(by) if by >= 0 => self.pos.checked_add(by as usize),
            SeekFrom::Start(at) => usize::try_from(at).ok(),
            _ => None,
        };
        match target {
            Some(at) if at >= self.pos && at <= hash.tar.len() => {
                self.pos = at;
                hash.advance_to(at);
                Ok(at as u64)
            }
            _ => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the tar ends inside an entry")),
        }
    }
}

/// Bytes read and written at a time for a file's content.
const COPY_BUF: usize = 512 * 1024;
/// Bytes of an in-memory file hashed, then written, at a time (well inside a core's cache).
const PIECE: usize = 256 * 1024;

/// Copies `from` to its end into `to` through `buf`.
fn copy(from: &mut impl Read, to: &mut impl Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn tar_error(dest: &Path, e: io::Error) -> Error {
    Error::Malformed { what: format!("layer tar for {}", dest.display()), reason: e.to_string() }
}

fn errno(path: &Path, e: rustix::io::Errno) -> Error {
    Error::Io { path: path.to_path_buf(), source: e.into() }
}

/// Ownership, mode and time of one entry, with PAX overrides applied.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

struct Unpacker<'a> {
    root: PathBuf,
    report: UnpackReport,
    dirs: Vec<(PathBuf, Timestamps)>,
    /// The xattr that makes a directory opaque.
    opaque: &'static str,
    /// File contents pass through here (`io::copy`'s 8 KiB made a write per 8 KiB); allocated
    /// by the first file copied (one written from memory needs none).
    buf: Vec<u8>,
    /// The tar, when it is in memory: file contents are written from it directly.
    memory: Option<Rc<RefCell<SliceHash<'a>>>>,
}

impl<'a> Unpacker<'a> {
    fn new(dest: &Path, xattrs: OverlayXattrs, memory: Option<Rc<RefCell<SliceHash<'a>>>>) -> Self {
        Unpacker {
            root: dest.to_path_buf(),
            report: UnpackReport::default(),
            dirs: Vec::new(),
            opaque: xattrs.opaque(),
            buf: Vec::new(),
            memory,
        }
    }

    /// Unpacks every entry, then sets the directories' times; the report's diff id is left to
    /// the caller.
    fn run<R: Read>(mut self, entries: tar::Entries<'_, R>) -> Result<UnpackReport> {
        for entry in entries {
            let entry = entry.map_err(|e| tar_error(&self.root, e))?;
            self.entry(entry)?;
        }
        // Directory times last: creating their children changed them.
        for (dir, times) in self.dirs.iter().rev() {
            rustix::fs::utimensat(CWD, dir, times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| errno(dir, e))?;
        }
        Ok(self.report)
    }

    /// Writes a regular file's contents: from the in-memory tar when there is one (a sparse
    /// entry's stored bytes are not its contents, so it is read like any stream), else copied.
    fn contents<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, file: &mut fs::File, path: &Path) -> Result<u64> {
        let Some(memory) = self.memory.as_ref().filter(|_| entry.header().entry_type() != EntryType::GNUSparse) else {
            if self.buf.is_empty() {
                self.buf = vec![0; COPY_BUF];
            }
            return copy(entry, file, &mut self.buf).map_err(|e| tar_error(path, e));
        };
        let tar = memory.borrow().tar;
        let start = usize::try_from(entry.raw_file_position()).unwrap_or(usize::MAX);
        let end = usize::try_from(entry.size()).ok().and_then(|size| start.checked_add(size));
        let Some(end) = end.filter(|&end| end <= tar.len()) else {
            return Err(tar_error(path, io::Error::new(io::ErrorKind::UnexpectedEof, "the tar ends inside this file")));
        };
        for piece in (start..end).step_by(PIECE) {
            let piece_end = (piece + PIECE).min(end);
            memory.borrow_mut().advance_to(piece_end);
            file.write_all(&tar[piece..piece_end]).map_err(Error::io(path))?;
        }
        Ok((end - start) as u64)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        self.report.entries += 1;
        let raw = entry.path().map_err(|e| tar_error(&self.root, e))?.into_owned();
        let Some(rel) = clean_path(&raw)? else {
            return Ok(()); // the layer root itself
        };
        let meta = self.meta(&mut entry, &raw)?;
        let name = rel.file_name().map(|n| n.as_bytes()).unwrap_or_default();
        if name.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(&rel, name);
        }
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::Char | EntryType::Block) {
            self.report.dropped_devices.push(rel.display().to_string());
            return Ok(());
        }
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let parent = self.parent_dir(&rel, true)?;
        let path = parent.join(rel.file_name().expect("a cleaned path has a last component"));
        let is_dir = kind == EntryType::Directory;
        let replaced_whiteout = clear_leaf(&path, is_dir)?;
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&path)
                    .map_err(Error::io(&path))?;
                self.report.bytes += self.contents(&mut entry, &mut file, &path)?;
                rustix::fs::fchown(&file, Some(uid(meta.uid)), Some(gid(meta.gid))).map_err(|e| errno(&path, e))?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode & 0o7777)).map_err(|e| errno(&path, e))?;
                self.xattrs(&path, &meta)?;
                rustix::fs::futimens(&file, &times(meta.mtime)).map_err(|e| errno(&path, e))?;
            }
            EntryType::Directory => {
                if !path.exists() {
                    fs::create_dir(&path).map_err(Error::io(&path))?;
                }
                if replaced_whiteout {
                    set_opaque(&path, self.opaque)?;
                }
                chown_nofollow(&path, &meta)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode & 0o7777)).map_err(Error::io(&path))?;
                self.xattrs(&path, &meta)?;
                self.dirs.push((path, times(meta.mtime)));
            }
            EntryType::Symlink => {
                let target = entry.link_name().map_err(|e| tar_error(&path, e))?;
                let target = target.filter(|t| !t.as_os_str().is_empty());
                let target = target.ok_or_else(|| Error::hostile(&raw, "is a symlink without a target"))?;
                std::os::unix::fs::symlink(&target, &path).map_err(Error::io(&path))?;
                chown_nofollow(&path, &meta)?;
                rustix::fs::utimensat(CWD, &path, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| errno(&path, e))?;
            }
            EntryType::Link => {
                let target = entry.link_name().map_err(|e| tar_error(&path, e))?;
                let target = target.ok_or_else(|| Error::hostile(&raw, "is a hard link without a target"))?;
                let target_rel = clean_path(&target)?.ok_or_else(|| Error::hostile(&raw, "links to the layer root"))?;
                let target_parent = self.parent_dir(&target_rel, false)?;
                let source = target_parent.join(target_rel.file_name().expect("cleaned"));
                match fs::symlink_metadata(&source) {
                    Ok(m) if m.is_dir() => return Err(Error::hostile(&raw, "hard-links a directory")),
                    Ok(m) if is_whiteout(&m) => return Err(Error::hostile(&raw, "hard-links a whiteout")),
                    Ok(_) => {}
                    Err(_) => return Err(Error::hostile(&raw, "hard-links a file this layer does not hold")),
                }
                fs::hard_link(&source, &path).map_err(Error::io(&path))?;
            }
            EntryType::Fifo => {
                rustix::fs::mknodat(CWD, &path, FileType::Fifo, Mode::from_raw_mode(meta.mode & 0o777), 0)
                    .map_err(|e| errno(&path, e))?;
                chown_nofollow(&path, &meta)?;
            }
            _ => return Err(Error::hostile(&raw, "has an unsupported entry type")),
        }
        Ok(())
    }

    fn meta<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, raw: &Path) -> Result<Meta> {
        let header = entry.header();
        let bad = |_| Error::hostile(raw, "has an unreadable header field");
        let mut meta = Meta {
            // An empty numeric field (all NULs, as some writers leave them) reads as 0.
            uid: header.uid().unwrap_or(0) as u32,
            gid: header.gid().unwrap_or(0) as u32,
            mode: header.mode().map_err(bad)?,
            mtime: header.mtime().unwrap_or(0) as i64,
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions().map_err(|e| tar_error(raw, e))? {
            for ext in pax {
                let ext = ext.map_err(|e| tar_error(raw, e))?;
                let Ok(key) = ext.key() else { continue };
                let number = || ext.value().ok().and_then(|v| v.split('.').next()?.parse::<i64>().ok());
                match key {
                    "uid" => meta.uid = number().ok_or_else(|| Error::hostile(raw, "has a bad PAX uid"))? as u32,
                    "gid" => meta.gid = number().ok_or_else(|| Error::hostile(raw, "has a bad PAX gid"))? as u32,
                    "mtime" => meta.mtime = number().unwrap_or(meta.mtime),
                    _ => {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            meta.xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
        }
        Ok(meta)
    }

    fn xattrs(&mut self, path: &Path, meta: &Meta) -> Result<()> {
        for (name, value) in &meta.xattrs {
            let allowed =
                name == "security.capability" || (name.starts_with("user.") && !name.starts_with("user.overlay."));
            if !allowed {
                self.report.dropped_xattrs.push(format!("{}: {name}", path.display()));
                continue;
            }
            rustix::fs::lsetxattr(path, name.as_str(), value, XattrFlags::empty()).map_err(|e| errno(path, e))?;
        }
        Ok(())
    }

    fn whiteout(&mut self, rel: &Path, name: &[u8]) -> Result<()> {
        let parent = self.parent_dir(rel, true)?;
        if name == OPAQUE_MARKER {
            return set_opaque(&parent, self.opaque);
        }
        if name.starts_with(META_PREFIX) {
            self.report.ignored_whiteouts.push(rel.display().to_string());
            return Ok(());
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(Error::hostile(rel, "is a whiteout without a name"));
        }
        let path = parent.join(std::ffi::OsStr::from_bytes(hidden));
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(()); // this layer adds NAME itself: a whiteout only hides lower layers
        }
        rustix::fs::mknodat(CWD, &path, FileType::CharacterDevice, Mode::empty(), 0).map_err(|e| errno(&path, e))
    }

    /// The directory holding `rel`, every component checked (never a symlink) and, if `create`,
    /// created when missing. A whiteout in the way (the layer removed a lower directory and
    /// recreates it) becomes an opaque directory.
    fn parent_dir(&self, rel: &Path, create: bool) -> Result<PathBuf> {
        let mut dir = self.root.clone();
        let Some(parent) = rel.parent() else { return Ok(dir) };
        for component in parent.components() {
            dir.push(component);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => return Err(Error::hostile(rel, "passes through a symlink")),
                Ok(m) if create && is_whiteout(&m) => {
                    fs::remove_file(&dir).map_err(Error::io(&dir))?;
                    fs::create_dir(&dir).map_err(Error::io(&dir))?;
                    set_opaque(&dir, self.opaque)?;
                }
                Ok(_) => return Err(Error::hostile(rel, "passes through something that is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&dir).map_err(Error::io(&dir))?;
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(Error::io(&dir))?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::hostile(rel, "names a directory this layer does not hold"));
                }
                Err(e) => return Err(Error::Io { path: dir, source: e }),
            }
        }
        Ok(dir)
    }
}

/// The entry's path relative to the layer root; `None` for the root itself.
fn clean_path(raw: &Path) -> Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(Error::hostile(raw, "has a '..' component")),
            Component::Prefix(_) => return Err(Error::hostile(raw, "has a path prefix")),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Removes what the same layer put at `path` before, unless both are directories (then the new
/// entry only updates metadata). Returns whether a whiteout was replaced.
fn clear_leaf(path: &Path, is_dir: bool) -> Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::Io { path: path.to_path_buf(), source: e }),
    };
    if meta.is_dir() {
        if !is_dir {
            fs::remove_dir_all(path).map_err(Error::io(path))?;
        }
        return Ok(false);
    }
    fs::remove_file(path).map_err(Error::io(path))?;
    Ok(is_whiteout(&meta))
}

pub(crate) fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn set_opaque(dir: &Path, xattr: &str) -> Result<()> {
    rustix::fs::lsetxattr(dir, xattr, b"y", XattrFlags::empty()).map_err(|e| errno(dir, e))
}

fn chown_nofollow(path: &Path, meta: &Meta) -> Result<()> {
    rustix::fs::chownat(CWD, path, Some(uid(meta.uid)), Some(gid(meta.gid)), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| errno(path, e))
}

fn uid(id: u32) -> Uid {
    Uid::from_raw(id)
}

fn gid(id: u32) -> Gid {
    Gid::from_raw(id)
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec { tv_sec: mtime, tv_nsec: 0 };
    Timestamps { last_access: t, last_modification: t }
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;

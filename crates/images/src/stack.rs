//! Stacks: the base every app's root filesystem starts from.
//!
//! The default stack is built from the host's own operating system, so apps run offline on a fresh
//! machine: one skeleton layer (the host's top-level symlinks such as `bin -> usr/bin`, empty mount
//! points for the host's system directories, a copy of the world-readable part of `/etc`, the
//! usual empty directories and a `vcap` user) plus read-only bind mounts of `/usr` and any other
//! real system directory. Only what every host user may already read is copied: `/etc/shadow`,
//! private keys and other root-only files stay out. A stack can also be any pulled image.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::{Digest, Error, ReadOnlyBind, Result, RootfsSpec, Store};

/// Top-level host directories a stack takes from the host (as symlinks or read-only binds).
const SYSTEM_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr"];
/// Empty directories every root filesystem has, with their modes.
const SKELETON_DIRS: &[(&str, u32)] = &[
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("run", 0o755),
    ("root", 0o700),
    ("home", 0o755),
    ("var", 0o755),
    ("var/tmp", 0o1777),
    ("var/log", 0o755),
];
/// The unprivileged user apps run as (Cloud Foundry's convention).
const VCAP_UID: u32 = 2000;

/// Layers and bind mounts a root filesystem starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub name: String,
    /// Bottom to top.
    pub layers: Vec<Digest>,
    pub binds: Vec<ReadOnlyBind>,
}

impl Stack {
    /// A root filesystem of this stack with `layers` (e.g. a droplet) on top, without a disk limit.
    pub fn with_layers(&self, layers: &[Digest]) -> RootfsSpec {
        RootfsSpec {
            layers: self.layers.iter().chain(layers).cloned().collect(),
            binds: self.binds.clone(),
            disk_limit: None,
        }
    }
}

impl Store {
    /// The stack built from the operating system at `host_root` (`/` in production). Blocking.
    /// The skeleton is an ordinary layer keyed by its content, so building it again when the
    /// host has not changed stores nothing new.
    pub fn host_stack(&self, host_root: &Path) -> Result<Stack> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut binds = Vec::new();
        let add = |tar: &mut tar::Builder<Vec<u8>>, header: &mut Header, path: &str, data: &[u8]| {
            tar.append_data(header, path, data).map_err(Error::io(host_root.join(path)))
        };
        for name in SYSTEM_DIRS {
            let host = host_root.join(name);
            let Ok(meta) = fs::symlink_metadata(&host) else { continue };
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&host).map_err(Error::io(&host))?;
                let mut header = header(EntryType::Symlink, &meta);
                tar.append_link(&mut header, name, &target).map_err(Error::io(&host))?;
            } else if meta.is_dir() {
                add(&mut tar, &mut header(EntryType::Directory, &meta), name, b"")?;
                binds.push(ReadOnlyBind { source: host, target: Path::new("/").join(name) });
            }
        }
        for (name, mode) in SKELETON_DIRS {
            add(&mut tar, &mut plain_header(EntryType::Directory, *mode, 0), name, b"")?;
        }
        add(&mut tar, &mut plain_header(EntryType::Directory, 0o755, VCAP_UID), "home/vcap", b"")?;
        copy_readable(&mut tar, host_root, Path::new("etc"))?;
        add_vcap(&mut tar, host_root)?;
        let bytes = tar.into_inner().map_err(Error::io(host_root))?;
        let layer = self.import_layer(&bytes[..])?;
        let stack = Stack { name: "host".into(), layers: vec![layer.diff_id], binds };
        self.pin_stack(&stack)?;
        Ok(stack)
    }

    /// A stack made of a pulled image's layers (not pinned: `gc` may take them when unused).
    pub fn image_stack(&self, reference: &str) -> Result<Stack> {
        let image = self.image(reference)?;
        Ok(Stack { name: image.reference.clone(), layers: image.diff_ids(), binds: Vec::new() })
    }

    /// Imports a pulled image as stack `name`: its layers are pinned, so `gc` keeps them.
    pub fn import_stack(&self, name: &str, reference: &str) -> Result<Stack> {
        let image = self.image(reference)?;
        let stack = Stack { name: name.to_string(), layers: image.diff_ids(), binds: Vec::new() };
        self.pin_stack(&stack)?;
        Ok(stack)
    }
}

fn header(kind: EntryType, meta: &fs::Metadata) -> Header {
    let mut h = plain_header(kind, meta.mode() & 0o7777, meta.uid());
    h.set_gid(meta.gid() as u64);
    h.set_mtime(meta.mtime().max(0) as u64);
    h
}

fn plain_header(kind: EntryType, mode: u32, owner: u32) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(owner as u64);
    h.set_gid(owner as u64);
    h.set_size(0);
    h
}

/// Copies `rel` (under `host_root`) into the tar: world-readable files and symlinks, and
/// directories every user may list; anything else is left out.
fn copy_readable(tar: &mut tar::Builder<Vec<u8>>, host_root: &Path, rel: &Path) -> Result<()> {
    let host = host_root.join(rel);
    let meta = fs::symlink_metadata(&host).map_err(Error::io(&host))?;
    let world = meta.permissions().mode();
    if meta.file_type().is_symlink() {
        let target = fs::read_link(&host).map_err(Error::io(&host))?;
        tar.append_link(&mut header(EntryType::Symlink, &meta), rel, &target).map_err(Error::io(&host))?;
    } else if meta.is_file() && world & 0o004 != 0 {
        let data = match fs::read(&host) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()), // removed meanwhile
            Err(e) => return Err(Error::Io { path: host, source: e }),
        };
        let mut h = header(EntryType::Regular, &meta);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, rel, &data[..]).map_err(Error::io(&host))?;
    } else if meta.is_dir() && world & 0o005 == 0o005 {
        tar.append_data(&mut header(EntryType::Directory, &meta), rel, &b""[..]).map_err(Error::io(&host))?;
        let mut names: Vec<PathBuf> = fs::read_dir(&host)
            .map_err(Error::io(&host))?
            .map(|e| e.map(|e| rel.join(e.file_name())))
            .collect::<io::Result<_>>()
            .map_err(Error::io(&host))?;
        names.sort();
        for name in names {
            copy_readable(tar, host_root, &name)?;
        }
    }
    Ok(())
}

/// Appends a `vcap` user and group to the copied `passwd` and `group` if the host has none.
fn add_vcap(tar: &mut tar::Builder<Vec<u8>>, host_root: &Path) -> Result<()> {
    let entries = [
        ("etc/passwd", format!("vcap:x:{VCAP_UID}:{VCAP_UID}::/home/vcap:/bin/sh\n")),
        ("etc/group", format!("vcap:x:{VCAP_UID}:\n")),
    ];
    for (rel, line) in entries {
        let host = host_root.join(rel);
        let mut text = fs::read_to_string(&host).unwrap_or_default();
        if text.lines().any(|l| l.starts_with("vcap:")) {
            continue;
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        let mut h = plain_header(EntryType::Regular, 0o644, 0);
        h.set_size(text.len() as u64);
        tar.append_data(&mut h, rel, text.as_bytes()).map_err(Error::io(&host))?;
    }
    Ok(())
}

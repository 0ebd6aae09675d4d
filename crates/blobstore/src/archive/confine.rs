//! Keeping an extraction inside its directory: entry names become relative paths with no `..`
//! and no root; files are only ever created under real directories (never through a symlink or
//! a file in the way); symlink targets are resolved against what was extracted, following
//! symlinks inside the tree, and must stay in it.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Symlinks followed while resolving one target before it counts as a loop (Linux's limit).
const MAX_HOPS: u32 = 40;

/// The relative path an entry name stands for; empty for the root itself (`./`).
pub(crate) fn relative(name: &str) -> Result<PathBuf> {
    let unsafe_entry = |reason| Error::UnsafeEntry { name: name.to_string(), reason };
    if name.contains('\0') {
        return Err(unsafe_entry("has a NUL byte in its name"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_entry("is an absolute path")),
            Component::ParentDir => return Err(unsafe_entry("goes up out of the app directory with `..`")),
            Component::CurDir => {}
            Component::Normal(part) => out.push(part),
        }
    }
    Ok(out)
}

/// Makes every directory above `rel` under `root`, refusing to pass through anything that is
/// not a real directory (a symlink, a file).
pub(crate) fn make_parents(root: &Path, rel: &Path, name: &str) -> Result<PathBuf> {
    let mut dir = root.to_path_buf();
    if let Some(parent) = rel.parent() {
        for part in parent.components() {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::UnsafeEntry {
                        name: name.to_string(),
                        reason: "would be written through a symlink or a file",
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir(&dir).map_err(Error::io("creating", &dir))?;
                }
                Err(e) => return Err(Error::io("reading", &dir)(e)),
            }
        }
    }
    Ok(root.join(rel))
}

/// Whether every directory above `rel` is a real directory (for hard link targets).
pub(crate) fn real_parents(root: &Path, rel: &Path) -> bool {
    let mut dir = root.to_path_buf();
    rel.parent().into_iter().flat_map(|p| p.components()).all(|part| {
        dir.push(part);
        std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
    })
}

/// Where the symlink at `link` (relative to `root`) ends up, following symlinks in the tree;
/// `None` if it leaves `root`, is absolute or loops. Missing components resolve lexically
/// (a dangling link inside the tree is fine).
pub(crate) fn resolve_link(root: &Path, link: &Path) -> Option<Vec<OsString>> {
    let target = std::fs::read_link(root.join(link)).ok()?;
    let parent: Vec<OsString> =
        link.parent().into_iter().flat_map(|p| p.components()).map(|c| c.as_os_str().to_os_string()).collect();
    let mut hops = 0;
    resolve(root, parent, &target, &mut hops)
}

fn resolve(root: &Path, mut stack: Vec<OsString>, target: &Path, hops: &mut u32) -> Option<Vec<OsString>> {
    for c in target.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return None,
            Component::CurDir => {}
            Component::ParentDir => {
                stack.pop()?;
            }
            Component::Normal(part) => {
                stack.push(part.to_os_string());
                let here: PathBuf = stack.iter().fold(root.to_path_buf(), |p, s| p.join(s));
                if std::fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink()) {
                    *hops += 1;
                    if *hops > MAX_HOPS {
                        return None;
                    }
                    let next = std::fs::read_link(&here).ok()?;
                    stack.pop();
                    stack = resolve(root, stack, &next, hops)?;
                }
            }
        }
    }
    Some(stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_confined() {
        assert_eq!(relative("./a/./b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(relative("./").unwrap(), PathBuf::new());
        assert!(relative("/etc/passwd").is_err());
        assert!(relative("a/../../b").is_err());
        assert!(relative("a/..").is_err());
        assert!(relative("a\0b").is_err());
    }

    #[test]
    fn links_through_links_are_resolved_for_real() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::os::unix::fs::symlink("..", r.join("a/up")).unwrap(); // a/up -> root: inside
        std::os::unix::fs::symlink("up/../x", r.join("a/t")).unwrap(); // lexically a/x, really ../x
        std::os::unix::fs::symlink("b/../../c", r.join("a/ok")).unwrap();
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        std::os::unix::fs::symlink("missing/file", r.join("dangling")).unwrap();
        assert_eq!(resolve_link(r, Path::new("a/up")), Some(vec![]));
        assert_eq!(resolve_link(r, Path::new("a/t")), None);
        assert_eq!(resolve_link(r, Path::new("a/ok")), Some(vec!["c".into()]));
        assert_eq!(resolve_link(r, Path::new("loop")), None);
        assert_eq!(resolve_link(r, Path::new("dangling")), Some(vec!["missing".into(), "file".into()]));
    }
}

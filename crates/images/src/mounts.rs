//! Reading the mount table: which mounts sit at or below a directory.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Mount points at or below `dir` in this process's mount namespace, deepest first and, at the same
/// depth, the most recently mounted first (an overlay before the file system holding its upper
/// directory). A point with stacked mounts is listed once per mount.
pub fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let table = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(table).map_err(Error::io(table))?;
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|mount_point| mount_point.starts_with(dir))
        .collect();
    found.reverse(); // mountinfo lists mounts in the order they were made
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    Ok(found)
}

/// The kernel writes space, tab, newline and backslash in mount points as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            out.push(u8::from_str_radix(&field[i + 1..i + 4], 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal_sequences() {
        assert_eq!(unescape(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/short\04"), r"/short\04");
    }

    #[test]
    fn finds_the_root_mount() {
        assert!(mounts_under(Path::new("/")).unwrap().contains(&PathBuf::from("/")));
        assert!(mounts_under(Path::new("/no/such/dir/here")).unwrap().is_empty());
    }
}

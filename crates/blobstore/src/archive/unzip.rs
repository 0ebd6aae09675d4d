//! Zip entries (app bits as the cf CLI zips them, buildpacks) through the `Extractor`. The type
//! comes from the Unix mode in the external attributes when there is one (symlinks, devices);
//! otherwise a name ending in `/` is a directory and anything else a file.

use std::io::Read;

use super::Extractor;
use crate::error::{Error, Result};

const S_IFMT: u32 = 0o170000;
/// The longest symlink target read from a zip entry.
const MAX_LINK: u64 = 4096;

pub(super) fn extract(file: std::fs::File, x: &mut Extractor) -> Result<()> {
    let bad = |e: zip::result::ZipError| Error::BadArchive { format: "zip file", reason: e.to_string() };
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(bad)?;
    if zip.len() as u64 > x.max_entries() {
        return Err(Error::TooManyEntries { limit: x.max_entries() });
    }
    for i in 0..zip.len() {
        x.entry()?;
        let mut entry = zip.by_index(i).map_err(bad)?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let mode = entry.unix_mode();
        let kind = mode.map(|m| m & S_IFMT).unwrap_or(0);
        match kind {
            0o040000 => x.dir(&name, mode.unwrap_or(0o755))?,
            0o100000 => x.file(&name, mode.unwrap_or(0o644), &mut entry)?,
            0o120000 => {
                let mut target = String::new();
                (&mut entry).take(MAX_LINK).read_to_string(&mut target).map_err(|e| Error::BadArchive {
                    format: "zip file",
                    reason: format!("{name}: symlink target: {e}"),
                })?;
                x.symlink(&name, &target)?;
            }
            0 if entry.is_dir() || name.ends_with('/') => x.dir(&name, 0o755)?,
            0 => x.file(&name, mode.map(|m| m & 0o777).filter(|m| *m != 0).unwrap_or(0o644), &mut entry)?,
            other => return Err(Error::SpecialFile { name, kind: special_kind(other) }),
        }
    }
    Ok(())
}

pub(super) fn special_kind(ifmt: u32) -> &'static str {
    match ifmt {
        0o020000 => "character device",
        0o060000 => "block device",
        0o010000 => "fifo",
        0o140000 => "socket",
        _ => "file of unknown type",
    }
}

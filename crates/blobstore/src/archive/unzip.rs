//! Zip entries (app bits as the cf CLI zips them, buildpacks) through the `Extractor`. The type
//! comes from the Unix mode in the external attributes when there is one (symlinks, devices);
//! otherwise a name ending in `/` is a directory and anything else a file.

use std::io::{Read, Seek, SeekFrom};

use super::Extractor;
use crate::error::{Error, Result};

const S_IFMT: u32 = 0o170000;
/// The longest symlink target read from a zip entry.
const MAX_LINK: u64 = 4096;

pub(super) fn extract(file: std::fs::File, x: &mut Extractor) -> Result<()> {
    let bad = |e: zip::result::ZipError| Error::BadArchive { format: "zip file", reason: e.to_string() };
    // Parsing the central directory holds every entry's record in memory: count them first.
    let mut file = file;
    if declared_entries(&mut file).is_some_and(|n| n > x.max_entries()) {
        return Err(Error::TooManyEntries { limit: x.max_entries() });
    }
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

/// The entry count the end-of-central-directory record declares (zip64's when the classic one
/// is saturated); `None` if there is no such record (the zip reader then reports the error).
fn declared_entries(file: &mut std::fs::File) -> Option<u64> {
    const EOCD: &[u8] = b"PK\x05\x06";
    const ZIP64_LOCATOR: &[u8] = b"PK\x06\x07";
    const ZIP64_EOCD: &[u8] = b"PK\x06\x06";
    let len = file.metadata().ok()?.len();
    let tail_len = len.min(22 + 65_535 + 20);
    let mut tail = vec![0; tail_len as usize];
    file.seek(SeekFrom::Start(len - tail_len)).ok()?;
    file.read_exact(&mut tail).ok()?;
    file.rewind().ok()?;
    let at = tail.windows(4).rposition(|w| w == EOCD)?;
    let eocd = tail.get(at..at + 22)?;
    let classic = u16::from_le_bytes([eocd[10], eocd[11]]);
    if classic != u16::MAX {
        return Some(u64::from(classic));
    }
    let locator = tail.get(at.checked_sub(20)?..at)?;
    if &locator[..4] != ZIP64_LOCATOR {
        return Some(u64::from(classic));
    }
    let offset = u64::from_le_bytes(locator[8..16].try_into().ok()?);
    let mut record = [0u8; 40];
    file.seek(SeekFrom::Start(offset)).ok()?;
    file.read_exact(&mut record).ok()?;
    file.rewind().ok()?;
    (&record[..4] == ZIP64_EOCD).then(|| u64::from_le_bytes(record[32..40].try_into().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn the_declared_entry_count_is_read_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zip");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..70 {
            w.start_file(format!("f{i}"), zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(b"x").unwrap();
        }
        w.set_comment("a trailing comment moves the record").unwrap();
        w.finish().unwrap();
        assert_eq!(super::declared_entries(&mut std::fs::File::open(&path).unwrap()), Some(70));
        std::fs::write(&path, b"no zip here").unwrap();
        assert_eq!(super::declared_entries(&mut std::fs::File::open(&path).unwrap()), None);
    }
}

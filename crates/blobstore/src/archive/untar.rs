//! Tar entries (droplets, gzipped) through the `Extractor`. Extension headers (PAX, GNU long
//! names) are read by the `tar` crate; anything that is not a file, directory or link is refused.

use flate2::read::GzDecoder;
use tar::EntryType;

use super::Extractor;
use crate::error::{Error, Result};

pub(super) fn extract(file: std::fs::File, x: &mut Extractor) -> Result<()> {
    let bad = |e: std::io::Error| Error::BadArchive { format: "gzipped tar", reason: e.to_string() };
    let mut archive = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(file)));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        x.entry()?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mode = entry.header().mode().map_err(bad)?;
        let target = entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => x.file(&name, mode, &mut entry)?,
            EntryType::Directory => x.dir(&name, mode)?,
            EntryType::Symlink => x.symlink(&name, &target)?,
            EntryType::Link => x.hardlink(&name, &target)?,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink => {}
            EntryType::Char => return Err(Error::SpecialFile { name, kind: "character device" }),
            EntryType::Block => return Err(Error::SpecialFile { name, kind: "block device" }),
            EntryType::Fifo => return Err(Error::SpecialFile { name, kind: "fifo" }),
            _ => return Err(Error::SpecialFile { name, kind: "file of an unsupported type" }),
        }
    }
    Ok(())
}

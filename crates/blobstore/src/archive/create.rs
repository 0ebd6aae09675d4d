//! Archives of a directory: a gzipped tar (droplets) and a zip (packages), written as they are
//! walked (no archive in memory). Entries are in name order with fixed times and owners, so the
//! same tree gives the same bytes (and the same content address). Symlinks are stored as links,
//! never followed; device files, fifos and sockets are refused.

use std::io::{Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use zip::write::SimpleFileOptions;

use crate::error::{Error, Result};

enum Kind {
    Dir,
    File(u64),
    Symlink(PathBuf),
}

struct Item {
    rel: String,
    path: PathBuf,
    mode: u32,
    kind: Kind,
}

/// Every entry under `root`, parents before children, in name order.
fn walk(root: &Path) -> Result<Vec<Item>> {
    fn visit(root: &Path, dir: &Path, out: &mut Vec<Item>) -> Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(Error::io("reading", dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(Error::io("reading", dir))?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let meta = std::fs::symlink_metadata(&path).map_err(Error::io("reading", &path))?;
            let rel = path.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
            let mode = meta.permissions().mode() & 0o777;
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                Kind::Dir
            } else if ft.is_file() {
                Kind::File(meta.len())
            } else if ft.is_symlink() {
                Kind::Symlink(std::fs::read_link(&path).map_err(Error::io("reading", &path))?)
            } else {
                return Err(Error::SpecialFile { name: rel, kind: "device, fifo or socket" });
            };
            let is_dir = matches!(kind, Kind::Dir);
            out.push(Item { rel, path: path.clone(), mode, kind });
            if is_dir {
                visit(root, &path, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    visit(root, root, &mut out)?;
    Ok(out)
}

/// Writes `dir` as a gzipped tar to `out` and hands `out` back.
pub fn create_tgz<W: Write>(dir: &Path, out: W) -> Result<W> {
    let items = walk(dir)?;
    let io = |e| Error::io("writing a tgz of", dir)(e);
    let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::default()));
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    for item in &items {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mode(item.mode);
        match &item.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, format!("{}/", item.rel), std::io::empty()).map_err(io)?;
            }
            Kind::File(size) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
                let f = std::fs::File::open(&item.path).map_err(Error::io("opening", &item.path))?;
                tar.append_data(&mut header, &item.rel, f).map_err(io)?;
            }
            Kind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                tar.append_link(&mut header, &item.rel, target).map_err(io)?;
            }
        }
    }
    tar.into_inner().map_err(io)?.finish().map_err(io)
}

/// Writes `dir` as a zip (deflated, Unix modes and symlinks kept) to `out` and hands `out` back.
pub fn create_zip<W: Write + Seek>(dir: &Path, out: W) -> Result<W> {
    let items = walk(dir)?;
    let zerr = |e: zip::result::ZipError| Error::io("writing a zip of", dir)(std::io::Error::other(e));
    let mut zip = zip::ZipWriter::new(out);
    let base = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for item in &items {
        match &item.kind {
            Kind::Dir => zip.add_directory(format!("{}/", item.rel), base.unix_permissions(item.mode)).map_err(zerr)?,
            Kind::File(size) => {
                let opts = base.unix_permissions(item.mode).large_file(*size >= u64::from(u32::MAX));
                zip.start_file(item.rel.as_str(), opts).map_err(zerr)?;
                let mut f = std::fs::File::open(&item.path).map_err(Error::io("opening", &item.path))?;
                std::io::copy(&mut f, &mut zip).map_err(Error::io("writing a zip of", dir))?;
            }
            Kind::Symlink(target) => zip
                .add_symlink(item.rel.as_str(), target.to_string_lossy(), base.unix_permissions(0o777))
                .map_err(zerr)?,
        }
    }
    zip.finish().map_err(zerr)
}

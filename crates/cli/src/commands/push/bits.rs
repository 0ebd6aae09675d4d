//! An app's bits as cf v8 sends them: the entries of a directory (minus `.cfignore`
//! and the default ignores) or of a zip, each with path, Unix mode, SHA-1 and size; the
//! `resource_matches` body; the `package.zip` of what the server lacks (directories as
//! `dir/` entries, modes in the external attributes, symlinks as link entries); and the
//! multipart body of the upload. No network I/O here.

use std::collections::HashSet;
use std::io::{Cursor, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::cfignore::CfIgnore;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { sha1: String, size: u64 },
    Symlink { target: String },
}

/// One entry of the app's bits; `path` is relative, `/`-separated, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    /// Permission bits (0o777 and setuid/setgid/sticky); the type comes from `kind`.
    pub mode: u32,
    pub kind: Kind,
    /// The content, for entries read from a zip (files on disk are read when zipping).
    content: Option<Vec<u8>>,
}

/// The bits of one app and where they came from.
#[derive(Debug)]
pub struct Bits {
    root: std::path::PathBuf,
    pub entries: Vec<Entry>,
}

impl Bits {
    /// Reads a directory (honouring `.cfignore`) or a `.zip`/`.jar`/`.war` file.
    pub fn read(path: &Path) -> Result<Bits> {
        let meta = std::fs::metadata(path).with_context(|| {
            format!("Cannot read the app's files at {}: use -p with an existing directory or zip", path.display())
        })?;
        let entries = if meta.is_dir() {
            let ignore = match std::fs::read_to_string(path.join(".cfignore")) {
                Ok(text) => CfIgnore::new(&text),
                Err(_) => CfIgnore::new(""),
            };
            let mut entries = Vec::new();
            walk(path, "", &ignore, &mut entries)?;
            entries
        } else {
            read_zip(path)?
        };
        if entries.iter().all(|e| e.kind == Kind::Dir) {
            bail!("No app files found in '{}'. Push a directory or zip that holds the app.", path.display());
        }
        Ok(Bits { root: path.to_path_buf(), entries })
    }

    /// Files with content, the only entries cf asks the server about.
    pub fn matchable(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| matches!(e.kind, Kind::File { size, .. } if size > 0))
    }

    /// Total bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| if let Kind::File { size, .. } = e.kind { size } else { 0 }).sum()
    }

    /// Builds `package.zip` from every entry not in `matched` (paths of matched files).
    pub fn zip(&self, matched: &HashSet<String>) -> Result<Vec<u8>> {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        for entry in &self.entries {
            if matched.contains(&entry.path) {
                continue;
            }
            let options = SimpleFileOptions::default().unix_permissions(entry.mode);
            match &entry.kind {
                Kind::Dir => zip.add_directory(format!("{}/", entry.path), options)?,
                Kind::Symlink { target } => zip.add_symlink(&entry.path, target, options)?,
                Kind::File { .. } => {
                    zip.start_file(&entry.path, options.compression_method(CompressionMethod::Deflated))?;
                    match &entry.content {
                        Some(content) => zip.write_all(content)?,
                        None => {
                            let mut file = std::fs::File::open(self.root.join(&entry.path))
                                .with_context(|| format!("cannot read {}", entry.path))?;
                            std::io::copy(&mut file, &mut zip)
                                .with_context(|| format!("cannot read {}", entry.path))?;
                        }
                    }
                }
            }
        }
        Ok(zip.finish().context("cannot finish package.zip")?.into_inner())
    }
}

/// One resource in the V3 `resource_matches` / upload `resources` shape.
pub fn resource(entry: &Entry) -> Value {
    let (sha1, size) = match &entry.kind {
        Kind::File { sha1, size } => (sha1.as_str(), *size),
        Kind::Dir | Kind::Symlink { .. } => ("", 0),
    };
    json!({"path": entry.path, "mode": format!("{:o}", entry.mode), "checksum": {"value": sha1}, "size_in_bytes": size})
}

/// The paths of the resources the server says it has, that are the same as ours.
pub fn matched_paths(bits: &Bits, answer: &Value) -> HashSet<String> {
    let ours: HashSet<(&str, &str)> = bits
        .matchable()
        .filter_map(|e| match &e.kind {
            Kind::File { sha1, .. } => Some((e.path.as_str(), sha1.as_str())),
            _ => None,
        })
        .collect();
    answer
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let path = r.get("path").and_then(Value::as_str)?;
            let sha1 = r.pointer("/checksum/value").and_then(Value::as_str)?;
            ours.contains(&(path, sha1)).then(|| path.to_owned())
        })
        .collect()
}

/// The `multipart/form-data` upload: field `resources` (JSON), then file `bits`
/// (`package.zip`) when there is one. Returns the content type and the body.
pub fn multipart(resources: &Value, zip: Option<&[u8]>) -> (String, Vec<u8>) {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let boundary = format!("hearth-{nanos:x}-{}", std::process::id());
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"resources\"\r\n\r\n{resources}\r\n").as_bytes(),
    );
    if let Some(zip) = zip {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"bits\"; filename=\"package.zip\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(zip);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn walk(root: &Path, rel: &str, ignore: &CfIgnore, out: &mut Vec<Entry>) -> Result<()> {
    let dir = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
    let mut children: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let name = child.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let meta = std::fs::symlink_metadata(child.path()).with_context(|| format!("cannot read {path}"))?;
        let is_dir = meta.is_dir();
        if ignore.is_ignored(&path, is_dir) {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(child.path()).with_context(|| format!("cannot read link {path}"))?;
            out.push(Entry {
                path,
                mode,
                kind: Kind::Symlink { target: target.to_string_lossy().into_owned() },
                content: None,
            });
        } else if is_dir {
            out.push(Entry { path: path.clone(), mode, kind: Kind::Dir, content: None });
            walk(root, &path, ignore, out)?;
        } else if meta.is_file() {
            let sha1 = sha1_of(&mut std::fs::File::open(child.path()).with_context(|| format!("cannot read {path}"))?)
                .with_context(|| format!("cannot read {path}"))?;
            out.push(Entry { path, mode, kind: Kind::File { sha1, size: meta.len() }, content: None });
        }
        // Sockets, fifos and devices are not app files.
    }
    Ok(())
}

fn read_zip(path: &Path) -> Result<Vec<Entry>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut archive = ZipArchive::new(file)
        .with_context(|| format!("{} is neither a directory nor a zip file: use -p with either", path.display()))?;
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).with_context(|| format!("cannot read entry {i} of {}", path.display()))?;
        let name = file.name().map(|n| n.to_string()).unwrap_or_default();
        let Some(safe) = file.enclosed_name() else {
            bail!("The zip {} has an entry that leaves its root: '{name}'", path.display());
        };
        let rel = safe.to_string_lossy().trim_end_matches('/').to_owned();
        if rel.is_empty() {
            continue;
        }
        let unix = file.unix_mode();
        let is_symlink = file.is_symlink();
        let is_dir = file.is_dir();
        let mut content = Vec::new();
        if !is_dir {
            file.read_to_end(&mut content).with_context(|| format!("cannot read {rel} in {}", path.display()))?;
        }
        let entry = if is_dir {
            Entry { path: rel, mode: unix.map_or(0o755, |m| m & 0o7777), kind: Kind::Dir, content: None }
        } else if is_symlink {
            let target = String::from_utf8_lossy(&content).into_owned();
            Entry { path: rel, mode: unix.map_or(0o777, |m| m & 0o7777), kind: Kind::Symlink { target }, content: None }
        } else {
            let sha1 = sha1_of(&mut content.as_slice())?;
            let size = content.len() as u64;
            Entry {
                path: rel,
                mode: unix.map_or(0o644, |m| m & 0o7777),
                kind: Kind::File { sha1, size },
                content: Some(content),
            }
        };
        entries.push(entry);
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

fn sha1_of(reader: &mut impl Read) -> std::io::Result<String> {
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(root: &Path, rel: &str, content: &str, mode: u32) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn app_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "index.html", "hello\n", 0o644);
        write(root, "bin/run", "#!/bin/sh\n", 0o755);
        write(root, "empty.txt", "", 0o600);
        write(root, "logs/today.log", "noise", 0o644);
        write(root, "manifest.yml", "applications: []", 0o644);
        write(root, ".git/HEAD", "ref", 0o644);
        write(root, "sub/.DS_Store", "x", 0o644);
        write(root, "keep.tmp", "k", 0o644);
        write(root, "drop.tmp", "d", 0o644);
        write(root, ".cfignore", "logs/\n*.tmp\n!keep.tmp\n# a comment\n", 0o644);
        std::fs::create_dir_all(root.join("assets/css")).unwrap();
        symlink("index.html", root.join("home.html")).unwrap();
        dir
    }

    #[test]
    fn reads_a_directory_with_modes_hashes_and_ignores() {
        let dir = app_dir();
        let bits = Bits::read(dir.path()).unwrap();
        let paths: Vec<&str> = bits.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["assets", "assets/css", "bin", "bin/run", "empty.txt", "home.html", "index.html", "keep.tmp", "sub"]
        );
        let get = |p: &str| bits.entries.iter().find(|e| e.path == p).unwrap();
        assert_eq!(get("bin/run").mode, 0o755);
        assert_eq!(get("empty.txt").mode, 0o600);
        // sha1("hello\n")
        assert_eq!(
            get("index.html").kind,
            Kind::File { sha1: "f572d396fae9206628714fb2ce00f72e94f2258f".into(), size: 6 }
        );
        assert_eq!(get("home.html").kind, Kind::Symlink { target: "index.html".into() });
        assert_eq!(get("assets").kind, Kind::Dir);
        let matchable: Vec<&str> = bits.matchable().map(|e| e.path.as_str()).collect();
        assert_eq!(matchable, ["bin/run", "index.html", "keep.tmp"]);
        let r = resource(get("bin/run"));
        assert_eq!(r["mode"], "755");
        assert_eq!(r["size_in_bytes"], 10);
        assert_eq!(bits.total_bytes(), 6 + 10 + 1);
    }

    #[test]
    fn the_package_zip_has_dirs_modes_symlinks_and_only_unmatched_files() {
        let dir = app_dir();
        let bits = Bits::read(dir.path()).unwrap();
        let matched: HashSet<String> = ["keep.tmp".to_owned()].into();
        let zip = bits.zip(&matched).unwrap();
        let mut archive = ZipArchive::new(Cursor::new(zip)).unwrap();
        let mut seen = Vec::new();
        for i in 0..archive.len() {
            let mut f = archive.by_index(i).unwrap();
            let name = f.name().unwrap().to_string();
            let mode = f.unix_mode().unwrap();
            let mut content = String::new();
            if !f.is_dir() {
                f.read_to_string(&mut content).unwrap();
            }
            seen.push((name, format!("{mode:o}"), content));
        }
        let want = [
            ("assets/", "40755", ""),
            ("assets/css/", "40755", ""),
            ("bin/", "40755", ""),
            ("bin/run", "100755", "#!/bin/sh\n"),
            ("empty.txt", "100600", ""),
            ("home.html", "120777", "index.html"),
            ("index.html", "100644", "hello\n"),
            ("sub/", "40755", ""),
        ];
        let want: Vec<(String, String, String)> =
            want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_zip_is_read_as_the_app() {
        let dir = app_dir();
        let bits = Bits::read(dir.path()).unwrap();
        let zip_path = dir.path().join("app.zip");
        std::fs::write(&zip_path, bits.zip(&HashSet::new()).unwrap()).unwrap();
        let from_zip = Bits::read(&zip_path).unwrap();
        let strip = |b: &Bits| b.entries.iter().map(|e| (e.path.clone(), e.mode, e.kind.clone())).collect::<Vec<_>>();
        assert_eq!(strip(&from_zip), strip(&bits));
        let again = from_zip.zip(&HashSet::new()).unwrap();
        assert!(ZipArchive::new(Cursor::new(again)).unwrap().by_name("bin/run").is_ok());
    }

    #[test]
    fn empty_dirs_and_non_zips_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("only/dirs")).unwrap();
        let err = Bits::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("No app files found"), "{err}");
        write(dir.path(), "notes.txt", "plain", 0o644);
        let err = format!("{:#}", Bits::read(&dir.path().join("notes.txt")).unwrap_err());
        assert!(err.contains("neither a directory nor a zip"), "{err}");
        let err = format!("{:#}", Bits::read(&dir.path().join("missing")).unwrap_err());
        assert!(err.contains("Cannot read the app's files"), "{err}");
    }

    #[test]
    fn matches_and_multipart_follow_the_wire_format() {
        let dir = app_dir();
        let bits = Bits::read(dir.path()).unwrap();
        let answer = json!({"resources": [
            {"path": "index.html", "mode": "644", "checksum": {"value": "f572d396fae9206628714fb2ce00f72e94f2258f"}, "size_in_bytes": 6},
            {"path": "bin/run", "mode": "755", "checksum": {"value": "0000"}, "size_in_bytes": 10},
        ]});
        let matched = matched_paths(&bits, &answer);
        assert_eq!(matched, HashSet::from(["index.html".to_owned()]));
        let (content_type, body) = multipart(&json!([]), Some(b"ZIP"));
        let boundary = content_type.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8(body).unwrap();
        let want = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"resources\"\r\n\r\n[]\r\n--{boundary}\r\n\
             Content-Disposition: form-data; name=\"bits\"; filename=\"package.zip\"\r\nContent-Type: application/octet-stream\r\n\r\nZIP\r\n--{boundary}--\r\n"
        );
        assert_eq!(text, want);
        let (_, body) = multipart(&json!([]), None);
        assert!(!String::from_utf8(body).unwrap().contains("bits"));
    }
}

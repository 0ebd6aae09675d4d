//! Crafted (often hostile) tarballs against the unpacker. These need root: whiteouts are device
//! nodes and the opaque marker is a `trusted.` xattr.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use tar::{EntryType, Header};

use super::*;

/// Builds tarballs with raw names, so `..` and absolute paths get through as an attacker would
/// write them (`tar::Builder::append_data` refuses them).
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn entry(mut self, path: &str, kind: EntryType, data: &[u8], link: &str) -> Self {
        let mut header = Header::new_gnu();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(if kind == EntryType::Directory { 0o755 } else { 0o644 });
        header.set_uid(1000);
        header.set_gid(1001);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    /// A regular file whose header claims `size` bytes, followed by `data` (padded).
    fn claiming(mut self, path: &str, data: &[u8], size: u64) -> Self {
        let at = self.0.len();
        self = self.entry(path, EntryType::Regular, data, "");
        let mut header = Header::new_gnu();
        header.as_mut_bytes().copy_from_slice(&self.0[at..at + 512]);
        header.set_size(size);
        header.set_cksum();
        self.0[at..at + 512].copy_from_slice(header.as_bytes());
        self
    }
    fn file(self, path: &str, data: &str) -> Self {
        self.entry(path, EntryType::Regular, data.as_bytes(), "")
    }
    fn dir(self, path: &str) -> Self {
        self.entry(path, EntryType::Directory, b"", "")
    }
    fn symlink(self, path: &str, target: &str) -> Self {
        self.entry(path, EntryType::Symlink, b"", target)
    }
    fn hardlink(self, path: &str, target: &str) -> Self {
        self.entry(path, EntryType::Link, b"", target)
    }
    fn pax(self, records: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = body_len + 1;
            while len != body_len + len.to_string().len() {
                len = body_len + len.to_string().len();
            }
            write!(data, "{len} {key}=").unwrap();
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        self.entry("pax", EntryType::XHeader, &data, "")
    }
    fn bytes(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

struct Scratch {
    _dir: tempfile::TempDir,
    layer: PathBuf,
    outside: PathBuf,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    let outside = dir.path().join("outside");
    fs::create_dir(&layer).unwrap();
    fs::create_dir(&outside).unwrap();
    Scratch { _dir: dir, layer, outside }
}

/// Unpacks as [`super::unpack_layer`] does and, for a plain tar, also from memory
/// ([`unpack_tar_with`], as a pulled layer is) into a sibling directory: both must end the
/// same way, and a success in the same files (a failure leaves a partial layer the caller
/// discards, so only what it wrote outside matters, which the tests check).
fn unpack_layer(bytes: &[u8], dest: &Path) -> Result<UnpackReport> {
    let streamed = super::unpack_layer(bytes, dest);
    if bytes.starts_with(&[0x1f, 0x8b]) || bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return streamed;
    }
    let twin = dest.with_extension("from-memory");
    fs::create_dir_all(&twin).unwrap();
    let from_memory = unpack_tar_with(bytes, &twin, OverlayXattrs::Trusted);
    let same_place = |text: String| text.replace(&twin.display().to_string(), &dest.display().to_string());
    match (&streamed, &from_memory) {
        (Ok(a), Ok(b)) => {
            assert_eq!(format!("{a:?}"), same_place(format!("{b:?}")), "the same report");
            assert_eq!(tree(dest), tree(&twin), "the same files");
        }
        // A tar cut short is told in each reader's words; a refusal in the same ones.
        (Err(a @ Error::Malformed { .. }), Err(b @ Error::Malformed { .. })) => {
            assert!(!b.to_string().is_empty(), "{a}")
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), same_place(b.to_string()), "the same error"),
        _ => panic!("streamed: {streamed:?}, from memory: {from_memory:?}"),
    }
    streamed
}

/// Every entry under `root`: path, type, owner, mode, times, contents or target, opaque marker.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let mut names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for path in names {
            let m = fs::symlink_metadata(&path).unwrap();
            let what = if m.is_dir() {
                dirs.push(path.clone());
                format!("dir opaque={:?}", xattr(&path, OPAQUE_XATTR))
            } else if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&path).unwrap().display())
            } else if m.is_file() {
                format!("file {} links={}", Digest::of(&fs::read(&path).unwrap()), m.nlink())
            } else {
                format!("special rdev={}", m.rdev())
            };
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            out.push(format!("{rel} {what} {}:{} {:o} {}", m.uid(), m.gid(), m.mode(), m.mtime()));
        }
    }
    out
}

fn refused(tar: Tar, dest: &Path) -> String {
    match unpack_layer(&tar.bytes()[..], dest) {
        Err(Error::HostileLayer { reason, .. }) => reason.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn unpacks_files_directories_links_with_owner_mode_and_time() {
    let s = scratch();
    let tar = Tar::default()
        .dir("./usr/")
        .file("./usr/hello.txt", "hello")
        .symlink("/usr/abs", "/etc/passwd")
        .symlink("usr/rel", "../usr/hello.txt")
        .hardlink("usr/again", "./usr/hello.txt")
        .file("deep/implicit/parent.txt", "x");
    let report = unpack_layer(&tar.bytes()[..], &s.layer).unwrap();
    let hello = s.layer.join("usr/hello.txt");
    assert_eq!(fs::read_to_string(&hello).unwrap(), "hello");
    let meta = fs::metadata(&hello).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777, meta.mtime()), (1000, 1001, 0o644, 1_600_000_000));
    assert_eq!(meta.nlink(), 2, "the hard link shares the inode");
    assert_eq!(fs::read_link(s.layer.join("usr/abs")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(fs::symlink_metadata(s.layer.join("usr/abs")).unwrap().uid(), 1000);
    assert_eq!(fs::metadata(s.layer.join("usr")).unwrap().mtime(), 1_600_000_000, "dir times set last");
    assert_eq!(fs::metadata(s.layer.join("deep/implicit")).unwrap().mode() & 0o777, 0o755);
    assert_eq!((report.entries, report.bytes), (6, 6));
}

#[test]
fn the_same_layer_gzip_zstd_or_plain_has_one_diff_id() {
    let plain = Tar::default().file("a", "content").bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let mut ids = Vec::new();
    for bytes in [&plain, &gz, &zst] {
        let s = scratch();
        ids.push(unpack_layer(&bytes[..], &s.layer).unwrap().diff_id);
        assert_eq!(fs::read_to_string(s.layer.join("a")).unwrap(), "content");
    }
    assert_eq!(ids, vec![Digest::of(&plain); 3]);
}

#[test]
fn dot_dot_paths_are_refused_and_nothing_escapes() {
    for path in ["../escape", "a/../../escape", "./../escape", "/../escape"] {
        let s = scratch();
        let reason = refused(Tar::default().file(path, "x"), &s.layer);
        assert!(reason.contains(".."), "{path}: {reason}");
        assert!(!s.layer.parent().unwrap().join("escape").exists());
    }
}

#[test]
fn absolute_paths_land_inside_the_layer() {
    let s = scratch();
    unpack_layer(&Tar::default().file("/abs/file", "x").bytes()[..], &s.layer).unwrap();
    assert_eq!(fs::read_to_string(s.layer.join("abs/file")).unwrap(), "x");
}

#[test]
fn writes_through_symlinks_are_refused() {
    let s = scratch();
    let outside = s.outside.to_str().unwrap();
    for (link, target) in [("abs", outside), ("rel", "../outside"), ("root", "/")] {
        let tar = Tar::default().symlink(link, target).file(&format!("{link}/planted"), "x");
        let reason = refused(tar, &s.layer);
        assert!(reason.contains("symlink"), "{link}: {reason}");
    }
    let tar = Tar::default().symlink("d", "../outside").file("d/sub/planted", "x");
    refused(tar, &s.layer);
    assert_eq!(fs::read_dir(&s.outside).unwrap().count(), 0, "nothing written outside");
}

#[test]
fn a_file_replaces_a_symlink_of_the_same_layer_without_following_it() {
    let s = scratch();
    let victim = s.outside.join("victim");
    fs::write(&victim, "untouched").unwrap();
    let tar = Tar::default().symlink("f", victim.to_str().unwrap()).file("f", "mine");
    unpack_layer(&tar.bytes()[..], &s.layer).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
    assert_eq!(fs::read_to_string(s.layer.join("f")).unwrap(), "mine");
    assert!(fs::symlink_metadata(s.layer.join("f")).unwrap().is_file());
}

#[test]
fn hard_links_outside_the_layer_are_refused() {
    let s = scratch();
    let victim = s.outside.join("victim");
    fs::write(&victim, "secret").unwrap();
    let cases = [
        Tar::default().hardlink("h", "../outside/victim"),
        Tar::default().hardlink("h", victim.to_str().unwrap()),
        Tar::default().symlink("l", s.outside.to_str().unwrap()).hardlink("h", "l/victim"),
        Tar::default().dir("d").hardlink("h", "d"),
    ];
    for tar in cases {
        refused(tar, &s.layer);
    }
    assert_eq!(fs::metadata(&victim).unwrap().nlink(), 1, "the victim got no new link");
}

#[test]
fn device_nodes_and_forged_overlay_xattrs_are_dropped() {
    let s = scratch();
    let tar = Tar::default()
        .entry("dev/mem", EntryType::Char, b"", "")
        .entry("dev/sda", EntryType::Block, b"", "")
        .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y"), ("SCHILY.xattr.user.note", b"kept")])
        .dir("d")
        .entry("fifo", EntryType::Fifo, b"", "");
    let report = unpack_layer(&tar.bytes()[..], &s.layer).unwrap();
    assert_eq!(report.dropped_devices, vec!["dev/mem", "dev/sda"]);
    assert!(!s.layer.join("dev/mem").exists() && !s.layer.join("dev/sda").exists());
    let d = s.layer.join("d");
    assert_eq!(report.dropped_xattrs.len(), 1, "{:?}", report.dropped_xattrs);
    assert!(xattr(&d, OPAQUE_XATTR).is_none(), "a layer cannot forge the opaque marker");
    assert_eq!(xattr(&d, "user.note").as_deref(), Some(&b"kept"[..]));
    assert!(fs::symlink_metadata(s.layer.join("fifo")).unwrap().file_type().is_fifo());
}

#[test]
fn oci_whiteouts_become_overlay_whiteouts() {
    let s = scratch();
    let tar = Tar::default()
        .file("etc/.wh.motd", "")
        .file("var/cache/.wh..wh..opq", "")
        .file("var/cache/fresh", "new")
        .file(".wh..wh.plnk", "")
        .file("keep/.wh.same", "")
        .file("keep/same", "added by this layer")
        .file(".wh.olddir", "")
        .file("olddir/new", "n");
    let report = unpack_layer(&tar.bytes()[..], &s.layer).unwrap();
    let motd = fs::symlink_metadata(s.layer.join("etc/motd")).unwrap();
    assert!(motd.file_type().is_char_device() && motd.rdev() == 0);
    assert!(!s.layer.join("etc/.wh.motd").exists());
    assert_eq!(xattr(&s.layer.join("var/cache"), OPAQUE_XATTR).as_deref(), Some(&b"y"[..]));
    assert!(s.layer.join("var/cache/fresh").exists());
    assert_eq!(report.ignored_whiteouts, vec![".wh..wh.plnk"]);
    assert_eq!(fs::read_to_string(s.layer.join("keep/same")).unwrap(), "added by this layer");
    assert_eq!(xattr(&s.layer.join("olddir"), OPAQUE_XATTR).as_deref(), Some(&b"y"[..]), "recreated dir is opaque");
}

#[test]
fn malformed_whiteouts_are_refused() {
    for name in ["d/.wh.", "d/.wh..", "d/.wh..."] {
        let s = scratch();
        let reason = refused(Tar::default().file(name, ""), &s.layer);
        assert!(reason.contains("whiteout"), "{name}: {reason}");
    }
}

#[test]
fn truncated_and_garbage_streams_are_errors() {
    let s = scratch();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&Tar::default().file("a", &"x".repeat(5000)).bytes()).unwrap();
    let gz = gz.finish().unwrap();
    assert!(unpack_layer(&gz[..gz.len() / 2], &s.layer).is_err());
    let s = scratch();
    assert!(unpack_layer(&[0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3][..], &s.layer).is_err());
    // A plain tar cut inside a file's contents, and inside a header.
    let plain = Tar::default().file("a", &"x".repeat(5000)).file("b", "y").bytes();
    for cut in [512 + 3000, 512 + 5120 + 100] {
        let s = scratch();
        assert!(unpack_layer(&plain[..cut], &s.layer).is_err(), "cut at {cut}");
    }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn long_names_pax_sizes_and_big_files_unpack_the_same_from_memory() {
    // GNU long name and long link target entries, and a file spanning several pieces.
    let long_dir = "d".repeat(120);
    let big: Vec<u8> = (0..600 * 1024 + 7).map(|n: u32| (n.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = Header::new_gnu();
    header.set_size(big.len() as u64);
    header.set_mode(0o640);
    builder.append_data(&mut header, format!("{long_dir}/big.bin"), &big[..]).unwrap();
    let mut link = Header::new_gnu();
    link.set_entry_type(EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    builder.append_link(&mut link, "short", format!("{long_dir}/big.bin")).unwrap();
    let tar = builder.into_inner().unwrap();
    let s = scratch();
    let report = unpack_layer(&tar, &s.layer).unwrap();
    assert_eq!(fs::read(s.layer.join(&long_dir).join("big.bin")).unwrap(), big);
    assert_eq!(fs::read_link(s.layer.join("short")).unwrap(), Path::new(&long_dir).join("big.bin"));
    assert_eq!((report.bytes, report.diff_id), (big.len() as u64, Digest::of(&tar)));

    // A PAX size overrides the header's (which here says 0).
    let s = scratch();
    let tar = Tar::default().pax(&[("size", b"5")]).claiming("sized", b"hello", 0).file("after", "x").bytes();
    unpack_layer(&tar, &s.layer).unwrap();
    assert_eq!(fs::read_to_string(s.layer.join("sized")).unwrap(), "hello");
    assert_eq!(fs::read_to_string(s.layer.join("after")).unwrap(), "x");

    // A size running past the end of the tar is an error both ways.
    let s = scratch();
    let tar = Tar::default().claiming("liar", b"short", 100_000).bytes();
    assert!(unpack_layer(&tar, &s.layer).is_err());
}

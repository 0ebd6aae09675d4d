//! Archives as a user's upload hits them: hostile zips and tgzs (zip slip, absolute names,
//! escaping symlinks and hard links, writes through links, devices, fifos, bombs, too many
//! entries, oversize, garbage) are refused with the right error and leave nothing on disk;
//! good archives keep modes and inside links; zips and tgzs of a tree round-trip byte-exact.

mod common;

use std::io::{Cursor, Write};
use std::path::Path;

use common::{Node, listing, snapshot, write};
use hearth_blobstore::archive::{self, Limits};
use hearth_blobstore::{Error, ErrorKind};
use zip::write::SimpleFileOptions;

enum Z<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Link(&'a str, &'a str),
}

fn zip_of(entries: &[Z]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let o = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for e in entries {
        match e {
            Z::File(name, data, mode) => {
                w.start_file(*name, o.unix_permissions(*mode)).unwrap();
                w.write_all(data).unwrap();
            }
            Z::Dir(name) => w.add_directory(*name, o.unix_permissions(0o755)).unwrap(),
            Z::Link(name, target) => w.add_symlink(*name, *target, o).unwrap(),
        }
    }
    w.finish().unwrap().into_inner()
}

/// Rewrites the Unix file type of the first central-directory entry (the zip writer only makes
/// files, directories and links; an attacker's tool makes anything).
fn with_unix_type(mut zip: Vec<u8>, ifmt: u32) -> Vec<u8> {
    let at = zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap() + 38;
    let attrs = u32::from_le_bytes(zip[at..at + 4].try_into().unwrap());
    let mode = ((attrs >> 16) & 0o7777) | ifmt;
    zip[at..at + 4].copy_from_slice(&((mode << 16) | (attrs & 0xffff)).to_le_bytes());
    zip
}

enum T<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Special(&'a str, tar::EntryType),
}

/// A tgz with names written raw into the headers (the tar crate's own path checks bypassed, as
/// a hostile tool would).
fn tgz_of(entries: &[T]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, link, data, mode, kind): (&str, &str, &[u8], u32, tar::EntryType) = match e {
            T::File(n, d, m) => (n, "", d, *m, tar::EntryType::Regular),
            T::Dir(n) => (n, "", b"", 0o755, tar::EntryType::Directory),
            T::Link(n, t) => (n, t, b"", 0o777, tar::EntryType::Symlink),
            T::Hard(n, t) => (n, t, b"", 0o644, tar::EntryType::Link),
            T::Special(n, k) => (n, "", b"", 0o644, *k),
        };
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

#[derive(Clone, Copy)]
enum Fmt {
    Zip,
    Tgz,
}

fn extract(fmt: Fmt, archive: &Path, dest: &Path, limits: &Limits) -> hearth_blobstore::Result<archive::Extracted> {
    match fmt {
        Fmt::Zip => archive::extract_zip(archive, dest, limits),
        Fmt::Tgz => archive::extract_tgz(archive, dest, limits),
    }
}

/// Extracting `bytes` fails; nothing is left beside the archive (no `out/`, no escaped file).
fn refused(fmt: Fmt, bytes: &[u8], limits: &Limits) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let input = work.join("upload");
    std::fs::write(&input, bytes).unwrap();
    let err = extract(fmt, &input, &work.join("out"), limits).expect_err("hostile archive refused");
    assert_eq!(listing(&work), vec!["upload"], "nothing left after: {err}");
    assert_eq!(listing(dir.path()), vec!["work"], "nothing escaped: {err}");
    err
}

fn refused_as(fmt: Fmt, bytes: &[u8], limits: &Limits, kind: ErrorKind, check: impl Fn(&Error) -> bool) {
    let err = refused(fmt, bytes, limits);
    assert!(check(&err), "unexpected error: {err:?}");
    assert_eq!(err.kind(), kind, "{err}");
}

const UNPROCESSABLE: ErrorKind = ErrorKind::Unprocessable;

#[test]
fn hostile_zips_are_refused_and_leave_nothing() {
    let l = Limits::DEFAULT;
    let unsafe_entry = |e: &Error| matches!(e, Error::UnsafeEntry { .. });
    let escapes = |e: &Error| matches!(e, Error::SymlinkEscapes { .. });
    let ok = Z::File("app.rb", b"puts 1", 0o644);
    refused_as(Fmt::Zip, &zip_of(&[ok, Z::File("../evil", b"x", 0o644)]), &l, UNPROCESSABLE, unsafe_entry);
    refused_as(Fmt::Zip, &zip_of(&[Z::File("a/../../evil", b"x", 0o644)]), &l, UNPROCESSABLE, unsafe_entry);
    let abs = format!("/tmp/hearth-blobstore-abs-{}", std::process::id());
    refused_as(Fmt::Zip, &zip_of(&[Z::File(&abs, b"x", 0o644)]), &l, UNPROCESSABLE, unsafe_entry);
    assert!(!Path::new(&abs).exists());
    refused_as(Fmt::Zip, &zip_of(&[Z::Link("link", "../outside")]), &l, UNPROCESSABLE, escapes);
    refused_as(Fmt::Zip, &zip_of(&[Z::Link("etc", "/etc")]), &l, UNPROCESSABLE, escapes);
    // Each link stays inside on its own; followed for real, `a/t` leaves.
    let chain = zip_of(&[Z::Dir("a/"), Z::Link("a/up", ".."), Z::Link("a/t", "up/../evil")]);
    refused_as(Fmt::Zip, &chain, &l, UNPROCESSABLE, escapes);
    // A link to the parent, then a file written through it.
    let through = zip_of(&[Z::Dir("d/"), Z::Link("d/up", "../.."), Z::File("d/up/evil", b"x", 0o644)]);
    refused_as(Fmt::Zip, &through, &l, UNPROCESSABLE, |e| unsafe_entry(e) || escapes(e));
    let inside = zip_of(&[Z::Dir("d/"), Z::Link("d/here", "."), Z::File("d/here/x", b"x", 0o644)]);
    refused_as(Fmt::Zip, &inside, &l, UNPROCESSABLE, unsafe_entry);
    for (ifmt, kind) in [(0o020000, "character device"), (0o060000, "block device"), (0o010000, "fifo")] {
        let dev = with_unix_type(zip_of(&[Z::File("dev", b"", 0o644)]), ifmt);
        refused_as(
            Fmt::Zip,
            &dev,
            &l,
            UNPROCESSABLE,
            |e| matches!(e, Error::SpecialFile { kind: k, .. } if *k == kind),
        );
    }
    refused_as(Fmt::Zip, b"PK\x03\x04 not really a zip", &l, UNPROCESSABLE, |e| matches!(e, Error::BadArchive { .. }));
    // Damaged data (the CRC no longer matches) is the upload's fault, not the server's.
    let mut damaged = zip_of(&[Z::File("a.txt", b"hello hello hello hello", 0o644)]);
    let at = damaged.windows(5).position(|w| w == b"a.txt").unwrap() + 5;
    damaged[at + 3] ^= 0xff;
    refused_as(Fmt::Zip, &damaged, &l, UNPROCESSABLE, |e| matches!(e, Error::BadArchive { .. }));
}

#[test]
fn hostile_tgzs_are_refused_and_leave_nothing() {
    let l = Limits::DEFAULT;
    let unsafe_entry = |e: &Error| matches!(e, Error::UnsafeEntry { .. });
    let escapes = |e: &Error| matches!(e, Error::SymlinkEscapes { .. });
    let hard = |e: &Error| matches!(e, Error::BadHardlink { .. });
    let f = T::File("app/run", b"#!/bin/sh", 0o755);
    refused_as(Fmt::Tgz, &tgz_of(&[f, T::File("../evil", b"x", 0o644)]), &l, UNPROCESSABLE, unsafe_entry);
    refused_as(Fmt::Tgz, &tgz_of(&[T::File("/evil", b"x", 0o644)]), &l, UNPROCESSABLE, unsafe_entry);
    refused_as(Fmt::Tgz, &tgz_of(&[T::Link("l", "../../../etc/shadow")]), &l, UNPROCESSABLE, escapes);
    refused_as(Fmt::Tgz, &tgz_of(&[T::Link("l", "/etc/shadow")]), &l, UNPROCESSABLE, escapes);
    refused_as(Fmt::Tgz, &tgz_of(&[T::Hard("h", "/etc/passwd")]), &l, UNPROCESSABLE, hard);
    refused_as(Fmt::Tgz, &tgz_of(&[T::Hard("h", "../outside")]), &l, UNPROCESSABLE, hard);
    refused_as(Fmt::Tgz, &tgz_of(&[T::Hard("h", "not-yet")]), &l, UNPROCESSABLE, hard);
    // A hard link through an inside symlink pointing out.
    let via = tgz_of(&[T::Link("up", ".."), T::Hard("h", "up/outside")]);
    refused_as(Fmt::Tgz, &via, &l, UNPROCESSABLE, |e| hard(e) || escapes(e));
    let through = tgz_of(&[T::Link("up", ".."), T::File("up/evil", b"x", 0o644)]);
    refused_as(Fmt::Tgz, &through, &l, UNPROCESSABLE, |e| unsafe_entry(e) || escapes(e));
    for (kind, what) in [
        (tar::EntryType::Char, "character device"),
        (tar::EntryType::Block, "block device"),
        (tar::EntryType::Fifo, "fifo"),
    ] {
        let dev = tgz_of(&[T::Dir("dev/"), T::Special("dev/null", kind)]);
        refused_as(
            Fmt::Tgz,
            &dev,
            &l,
            UNPROCESSABLE,
            |e| matches!(e, Error::SpecialFile { kind: k, .. } if *k == what),
        );
    }
    refused_as(Fmt::Tgz, b"\x1f\x8b garbage", &l, UNPROCESSABLE, |e| matches!(e, Error::BadArchive { .. }));
    let whole = tgz_of(&[T::File("big", &[5u8; 100_000], 0o644)]);
    let truncated = &whole[..whole.len() / 2];
    refused_as(Fmt::Tgz, truncated, &l, UNPROCESSABLE, |e| matches!(e, Error::BadArchive { .. }));
}

#[test]
fn bombs_entry_floods_and_oversize_archives_are_refused() {
    let zeros = vec![0u8; 20 << 20];
    let small = Limits { max_unpacked_bytes: 1 << 20, ..Limits::DEFAULT };
    let zip_bomb = zip_of(&[Z::File("zeros", &zeros, 0o644)]);
    assert!(zip_bomb.len() < 100 << 10, "the bomb is small: {} bytes", zip_bomb.len());
    let too_big = |e: &Error| matches!(e, Error::UnpackedTooLarge { .. });
    refused_as(Fmt::Zip, &zip_bomb, &small, ErrorKind::TooLarge, too_big);
    let tgz_bomb = tgz_of(&[T::File("zeros", &zeros, 0o644)]);
    assert!(tgz_bomb.len() < 100 << 10);
    refused_as(Fmt::Tgz, &tgz_bomb, &small, ErrorKind::TooLarge, too_big);
    // Many files each under the limit add up past it.
    let chunk = vec![7u8; 300 << 10];
    let many = zip_of(&[
        Z::File("a", &chunk, 0o644),
        Z::File("b", &chunk, 0o644),
        Z::File("c", &chunk, 0o644),
        Z::File("d", &chunk, 0o644),
    ]);
    refused_as(Fmt::Zip, &many, &small, ErrorKind::TooLarge, too_big);

    let few = Limits { max_entries: 10, ..Limits::DEFAULT };
    let names: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    let flood_zip = zip_of(&names.iter().map(|n| Z::File(n, b"", 0o644)).collect::<Vec<_>>());
    let flood_tgz = tgz_of(&names.iter().map(|n| T::File(n, b"", 0o644)).collect::<Vec<_>>());
    let too_many = |e: &Error| matches!(e, Error::TooManyEntries { limit: 10 });
    refused_as(Fmt::Zip, &flood_zip, &few, UNPROCESSABLE, too_many);
    refused_as(Fmt::Tgz, &flood_tgz, &few, UNPROCESSABLE, too_many);

    let tiny_input = Limits { max_archive_bytes: 100, ..Limits::DEFAULT };
    let oversize = |e: &Error| matches!(e, Error::ArchiveTooLarge { limit: 100, .. });
    refused_as(Fmt::Zip, &flood_zip, &tiny_input, ErrorKind::TooLarge, oversize);
    refused_as(Fmt::Tgz, &flood_tgz, &tiny_input, ErrorKind::TooLarge, oversize);
}

#[test]
fn good_archives_keep_modes_and_inside_links() {
    let dir = tempfile::tempdir().unwrap();
    let zip = zip_of(&[
        Z::Dir("bin/"),
        Z::File("bin/start", b"#!/bin/sh\necho hi\n", 0o755),
        Z::File("config.yml", b"a: 1\n", 0o644),
        Z::File("secret", b"s", 0o600),
        Z::File("setuid", b"s", 0o4755),
        Z::Link("current", "bin/start"),
        Z::Link("bin/up", "../config.yml"),
        Z::Link("dangling", "not/here"),
        Z::File("lib/deep/file.txt", b"deep", 0o644),
    ]);
    std::fs::write(dir.path().join("app.zip"), zip).unwrap();
    let out = dir.path().join("out");
    let done = archive::extract_zip(&dir.path().join("app.zip"), &out, &Limits::DEFAULT).unwrap();
    assert_eq!((done.files, done.symlinks), (5, 3));
    let tree = snapshot(&out);
    assert_eq!(tree["bin/start"], Node::File(0o755, b"#!/bin/sh\necho hi\n".to_vec()));
    assert_eq!(tree["config.yml"], Node::File(0o644, b"a: 1\n".to_vec()));
    assert_eq!(tree["secret"], Node::File(0o600, b"s".to_vec()));
    assert_eq!(tree["setuid"], Node::File(0o755, b"s".to_vec()), "setuid dropped");
    assert_eq!(tree["current"], Node::Link("bin/start".into()));
    assert_eq!(std::fs::read(out.join("bin/up")).unwrap(), b"a: 1\n");
    assert_eq!(tree["lib/deep/file.txt"], Node::File(0o644, b"deep".to_vec()));

    let err = archive::extract_zip(&dir.path().join("app.zip"), &out, &Limits::DEFAULT).unwrap_err();
    assert!(matches!(err, Error::DestinationExists { .. }), "{err}");
    assert_eq!(snapshot(&out), tree, "a refused extraction leaves an existing directory alone");

    let tgz = tgz_of(&[T::File("app/a", b"A", 0o640), T::Hard("app/b", "app/a"), T::Link("app/c", "a")]);
    std::fs::write(dir.path().join("droplet.tgz"), tgz).unwrap();
    let out = dir.path().join("droplet");
    archive::extract_tgz(&dir.path().join("droplet.tgz"), &out, &Limits::DEFAULT).unwrap();
    assert_eq!(std::fs::read(out.join("app/b")).unwrap(), b"A");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(out.join("app/b")).unwrap().ino(),
        std::fs::metadata(out.join("app/a")).unwrap().ino()
    );
}

fn sample_tree(root: &Path) {
    write(root, "Procfile", b"web: ./run\n", 0o644);
    write(root, "run", b"#!/bin/sh\nexec ./server\n", 0o755);
    write(root, "private/key", b"k", 0o600);
    write(root, "empty", b"", 0o644);
    write(root, "public/index.html", &vec![b'x'; 200_000], 0o644);
    std::fs::create_dir(root.join("emptydir")).unwrap();
    std::os::unix::fs::symlink("public/index.html", root.join("index")).unwrap();
}

#[test]
fn zips_and_tgzs_of_a_tree_round_trip_and_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    sample_tree(&src);
    let want = snapshot(&src);

    let zip = archive::create_zip(&src, Cursor::new(Vec::new())).unwrap().into_inner();
    let again = archive::create_zip(&src, Cursor::new(Vec::new())).unwrap().into_inner();
    assert_eq!(zip, again, "the same tree zips to the same bytes");
    std::fs::write(dir.path().join("t.zip"), &zip).unwrap();
    archive::extract_zip(&dir.path().join("t.zip"), &dir.path().join("from-zip"), &Limits::DEFAULT).unwrap();
    assert_eq!(snapshot(&dir.path().join("from-zip")), want);

    let tgz = archive::create_tgz(&src, Vec::new()).unwrap();
    assert_eq!(tgz, archive::create_tgz(&src, Vec::new()).unwrap(), "the same tree tars to the same bytes");
    std::fs::write(dir.path().join("t.tgz"), &tgz).unwrap();
    archive::extract_tgz(&dir.path().join("t.tgz"), &dir.path().join("from-tgz"), &Limits::DEFAULT).unwrap();
    assert_eq!(snapshot(&dir.path().join("from-tgz")), want);

    // A socket in the tree cannot be archived.
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    let err = archive::create_tgz(&src, Vec::new()).unwrap_err();
    assert!(matches!(err, Error::SpecialFile { .. }), "{err}");
    assert!(archive::create_zip(&src, Cursor::new(Vec::new())).is_err());
}

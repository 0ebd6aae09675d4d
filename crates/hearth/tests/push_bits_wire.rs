//! The bits `hearth push` uploads, checked against the real blobstore the API assembles
//! packages with: the CLI's `package.zip` extracts to the app's tree (modes, empty
//! directories, symlinks; `.cfignore`d and default-ignored files absent), and a re-push —
//! the resources the pool matched plus a zip of only the rest — assembles the same tree.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hearth_blobstore::archive::{Limits, extract_zip};
use hearth_blobstore::resources::{PoolRule, Resource, assemble_package, match_resources};
use hearth_blobstore::{BlobStore, BlobStoreConfig, Namespace};
use hearth_cli::commands::push::bits::{self, Bits};
use serde_json::{Value, json};

fn write(root: &Path, rel: &str, content: &[u8], mode: u32) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An app with a big file, a script, an empty directory, a symlink and ignored files.
fn app(root: &Path) {
    write(root, "index.html", b"<h1>hi</h1>\n", 0o644);
    write(root, "bin/run", b"#!/bin/sh\nexec httpd\n", 0o755);
    write(root, "assets/big.bin", &vec![7u8; 200_000], 0o640);
    write(root, "secret.env", b"TOKEN=1\n", 0o600);
    write(root, ".cfignore", b"secret.env\ntmp/\n", 0o644);
    write(root, "tmp/cache", b"x", 0o644);
    write(root, "manifest.yml", b"applications: []\n", 0o644);
    write(root, ".git/HEAD", b"ref: x\n", 0o644);
    std::fs::create_dir_all(root.join("empty/dir")).unwrap();
    std::os::unix::fs::symlink("../index.html", root.join("bin/home.html")).unwrap();
}

/// Every entry of a tree: path, kind, permission bits, content (or link target).
fn tree(root: &Path) -> Vec<(String, char, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if meta.file_type().is_symlink() {
                out.push((rel, 'l', 0, std::fs::read_link(&path).unwrap().to_string_lossy().as_bytes().to_vec()));
            } else if meta.is_dir() {
                out.push((rel, 'd', mode, Vec::new()));
                dirs.push(path);
            } else {
                out.push((rel, 'f', mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A resource as the API reads it from the CLI's JSON.
fn parse(v: &Value) -> Resource {
    Resource {
        sha1: v["checksum"]["value"].as_str().unwrap().to_owned(),
        size: v["size_in_bytes"].as_u64().unwrap(),
        path: v["path"].as_str().unwrap().to_owned(),
        mode: Some(u32::from_str_radix(v["mode"].as_str().unwrap(), 8).unwrap()),
    }
}

/// A resource as the API renders it in its answers.
fn render(r: &Resource) -> Value {
    json!({"checksum": {"value": r.sha1}, "size_in_bytes": r.size, "path": r.path,
           "mode": format!("{:o}", r.mode.unwrap_or(0o644))})
}

#[test]
fn the_package_zip_and_matched_resources_assemble_the_app_as_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app");
    app(&src);
    let bits = Bits::read(&src).unwrap();

    // The first push: everything in the zip; the blobstore extracts exactly the app.
    let zip_path = dir.path().join("package.zip");
    std::fs::write(&zip_path, bits.zip(&HashSet::new()).unwrap()).unwrap();
    let extracted = dir.path().join("extracted");
    let counts = extract_zip(&zip_path, &extracted, &Limits::DEFAULT).unwrap();
    assert_eq!((counts.files, counts.symlinks), (3, 1), "{counts:?}");
    let mut want = tree(&src);
    want.retain(|(p, ..)| {
        !["secret.env", ".cfignore", "tmp", "tmp/cache", "manifest.yml", ".git", ".git/HEAD"].contains(&p.as_str())
    });
    assert_eq!(tree(&extracted), want);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = BlobStore::open(&BlobStoreConfig::Local { root: dir.path().join("blobs") }).unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let first =
            assemble_package(&store, &work, Some(&zip_path), &[], &Limits::DEFAULT, &PoolRule::DEFAULT).await.unwrap();
        assert_eq!(first.newly_cached, 3);

        // The re-push: the pool knows every file; the zip carries only dirs and the link.
        let wanted: Vec<Resource> = bits.matchable().map(|e| parse(&bits::resource(e))).collect();
        let found = match_resources(&store, &PoolRule::DEFAULT, &wanted).await.unwrap();
        let answer = json!({"resources": found.iter().map(render).collect::<Vec<_>>()});
        let matched = bits::matched_paths(&bits, &answer);
        assert_eq!(matched.len(), 3, "{answer}");
        let rest = dir.path().join("rest.zip");
        std::fs::write(&rest, bits.zip(&matched).unwrap()).unwrap();
        let resources: Vec<Resource> =
            bits.entries.iter().filter(|e| matched.contains(&e.path)).map(|e| parse(&bits::resource(e))).collect();
        let second = assemble_package(&store, &work, Some(&rest), &resources, &Limits::DEFAULT, &PoolRule::DEFAULT)
            .await
            .unwrap();
        assert_eq!((second.uploaded_files, second.cached_files), (0, 3), "{second:?}");
        let package = dir.path().join("assembled.zip");
        store.get_to_file(Namespace::Packages, &second.package.key, &package).await.unwrap();
        let again = dir.path().join("again");
        extract_zip(&package, &again, &Limits::DEFAULT).unwrap();
        assert_eq!(tree(&again), want, "the re-push assembles the same app, modes included");
    });
}

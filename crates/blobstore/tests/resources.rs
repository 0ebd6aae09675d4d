//! Resource matching and package assembly as a push and a re-push see them, on the local store
//! and on moto: the second push uploads only the changed file (and the empty one the pool does
//! not keep), and the assembled package is the whole new tree. Bad resource lists store nothing.

mod common;

use std::path::Path;

use common::{listing, snapshot, write};
use hearth_blobstore::archive::{self, Limits};
use hearth_blobstore::resources::{PoolRule, Resource, assemble_package, match_resources};
use hearth_blobstore::{BlobStore, BlobStoreConfig, Error, Namespace};

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes))
}

/// What the cf CLI sends for every regular file of an app directory.
fn describe(root: &Path) -> Vec<Resource> {
    let mut out = Vec::new();
    for (rel, node) in snapshot(root) {
        if let common::Node::File(mode, content) = node {
            out.push(Resource { sha1: sha1_hex(&content), size: content.len() as u64, path: rel, mode: Some(mode) });
        }
    }
    out
}

fn app(root: &Path) {
    for i in 0..40 {
        write(root, &format!("lib/mod{i}.py"), format!("def f{i}():\n    return {i}\n").as_bytes(), 0o644);
    }
    write(root, "run.sh", b"#!/bin/sh\nexec python3 app.py\n", 0o755);
    write(root, "app.py", b"print('v1')\n", 0o644);
    // Incompressible, so the first push's zip is as big as a real app's assets.
    let mut x: u32 = 12345;
    let noise: Vec<u8> = (0..100_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    write(root, "static/big.bin", &noise, 0o600);
    write(root, "empty", b"", 0o644);
    std::os::unix::fs::symlink("lib/mod1.py", root.join("main.py")).unwrap();
}

fn zip_file(dir: &Path, path: &Path) -> u64 {
    let f = std::fs::File::create(path).unwrap();
    archive::create_zip(dir, f).unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// The package's tree, extracted.
async fn package_tree(
    store: &BlobStore,
    key: &str,
    scratch: &Path,
) -> std::collections::BTreeMap<String, common::Node> {
    let zip = scratch.join(format!("{key}.zip"));
    store.get_to_file(Namespace::Packages, key, &zip).await.unwrap();
    let out = scratch.join(key);
    archive::extract_zip(&zip, &out, &Limits::DEFAULT).unwrap();
    snapshot(&out)
}

async fn push_and_repush(store: &BlobStore) {
    let tmp = tempfile::tempdir().unwrap();
    let (t, rule, limits) = (tmp.path(), PoolRule::DEFAULT, Limits::DEFAULT);
    let work = t.join("work");
    std::fs::create_dir(&work).unwrap();
    let src = t.join("app");
    app(&src);

    // First push: nothing known, the whole app is uploaded.
    let all = describe(&src);
    assert!(match_resources(store, &rule, &all).await.unwrap().is_empty());
    let full_bytes = zip_file(&src, &t.join("full.zip"));
    let first = assemble_package(store, &work, Some(&t.join("full.zip")), &[], &limits, &rule).await.unwrap();
    assert_eq!(first.uploaded_files, 44);
    assert_eq!(first.newly_cached, 43, "every non-empty file is cached");
    assert_eq!(package_tree(store, &first.package.key, t).await, snapshot(&src));
    assert!(listing(&work).is_empty(), "the work directory is cleaned");

    // Re-push after changing one file: only it (and the empty file) is uploaded.
    write(&src, "app.py", b"print('v2')\n", 0o644);
    let all = describe(&src);
    let known = match_resources(store, &rule, &all).await.unwrap();
    let unknown: Vec<&Resource> = all.iter().filter(|r| !known.contains(r)).collect();
    let mut unknown_paths: Vec<&str> = unknown.iter().map(|r| r.path.as_str()).collect();
    unknown_paths.sort();
    assert_eq!(unknown_paths, vec!["app.py", "empty"]);
    let upload_dir = t.join("upload");
    for r in &unknown {
        let content = std::fs::read(src.join(&r.path)).unwrap();
        write(&upload_dir, &r.path, &content, r.mode.unwrap());
    }
    std::os::unix::fs::symlink("lib/mod1.py", upload_dir.join("main.py")).unwrap();
    let upload_bytes = zip_file(&upload_dir, &t.join("changed.zip"));
    assert!(upload_bytes * 50 < full_bytes, "re-push sends {upload_bytes} bytes, first push {full_bytes}");
    println!("first push uploads {full_bytes} bytes, the re-push {upload_bytes} bytes");
    let second = assemble_package(store, &work, Some(&t.join("changed.zip")), &known, &limits, &rule).await.unwrap();
    assert_eq!((second.uploaded_files, second.cached_files), (2, 42));
    assert_eq!(package_tree(store, &second.package.key, t).await, snapshot(&src), "the package is the whole new tree");
    assert_ne!(second.package.key, first.package.key);

    // Every file known and nothing uploaded (an empty file can come only with an upload).
    let nonempty: Vec<Resource> = all.iter().filter(|r| r.size > 0).cloned().collect();
    let third = assemble_package(store, &work, None, &nonempty, &limits, &rule).await.unwrap();
    assert_eq!(third.uploaded_files, 0);
    assert_eq!(package_tree(store, &third.package.key, t).await.len(), snapshot(&src).len() - 2);

    // Bad resource lists are refused before anything is stored.
    let packages = store.list(Namespace::Packages).await.unwrap();
    let mut missing = all[0].clone();
    missing.sha1 = sha1_hex(b"never uploaded");
    missing.size = 14;
    let err =
        assemble_package(store, &work, Some(&t.join("changed.zip")), &[missing], &limits, &rule).await.unwrap_err();
    assert!(matches!(err, Error::ResourceNotCached { .. }), "{err}");
    let mut wrong_size = known[0].clone();
    wrong_size.size += 1;
    let err = assemble_package(store, &work, None, &[wrong_size], &limits, &rule).await.unwrap_err();
    assert!(matches!(err, Error::BadResource { .. }), "{err}");
    let twice = [known[0].clone(), known[0].clone()];
    let err = assemble_package(store, &work, None, &twice, &limits, &rule).await.unwrap_err();
    assert!(matches!(err, Error::BadResource { .. }), "{err}");
    let mut bad_sha = all[0].clone();
    bad_sha.sha1 = "not-a-sha1".into();
    assert!(matches!(match_resources(store, &rule, &[bad_sha.clone()]).await, Err(Error::BadResource { .. })));
    let err = assemble_package(store, &work, None, &[bad_sha], &limits, &rule).await.unwrap_err();
    assert!(matches!(err, Error::BadResource { .. }), "{err}");
    let mut escaping = known[0].clone();
    escaping.path = "../../etc/cron.d/x".into();
    let err = assemble_package(store, &work, None, &[escaping], &limits, &rule).await.unwrap_err();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{err}");
    let small = Limits { max_unpacked_bytes: 1000, ..limits };
    let err = assemble_package(store, &work, None, &nonempty, &small, &rule).await.unwrap_err();
    assert!(matches!(err, Error::UnpackedTooLarge { .. }), "{err}");
    assert_eq!(store.list(Namespace::Packages).await.unwrap(), packages, "refused assemblies store no package");
    assert!(listing(&work).is_empty(), "the work directory is cleaned after failures too");
}

#[tokio::test]
async fn push_and_repush_on_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(&BlobStoreConfig::Local { root: dir.path().join("blobs") }).unwrap();
    push_and_repush(&store).await;
}

#[tokio::test]
async fn push_and_repush_on_s3() {
    let moto = common::Moto::start();
    let store = BlobStore::open(&BlobStoreConfig::S3(moto.config())).unwrap();
    push_and_repush(&store).await;
}

#[tokio::test]
async fn the_pool_keeps_only_files_within_its_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(&BlobStoreConfig::Local { root: dir.path().join("blobs") }).unwrap();
    let src = dir.path().join("app");
    write(&src, "small", b"tiny", 0o644);
    write(&src, "large", &vec![1u8; 5000], 0o644);
    let zip = dir.path().join("app.zip");
    zip_file(&src, &zip);
    let rule = PoolRule { min_size: 1, max_size: 1000 };
    let work = dir.path();
    let done = assemble_package(&store, work, Some(&zip), &[], &Limits::DEFAULT, &rule).await.unwrap();
    assert_eq!(done.newly_cached, 1);
    let all = describe(&src);
    let known = match_resources(&store, &rule, &all).await.unwrap();
    assert_eq!(known.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), vec!["small"]);
    // A known SHA-1 with another size is not a match.
    let mut lying = known[0].clone();
    lying.size = 5;
    assert!(match_resources(&store, &rule, &[lying]).await.unwrap().is_empty());
    assert_eq!(store.list(Namespace::Resources).await.unwrap(), vec![sha1_hex(b"tiny")]);
}

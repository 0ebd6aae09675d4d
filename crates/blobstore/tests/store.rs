//! The blobstore on both back ends: the local directory and a real S3-compatible server (moto).
//! Round trips with known digests, refusal past the limit storing nothing, concurrent puts of
//! the same content, idempotent delete, listing, missing blobs and bad keys.

mod common;

use hearth_blobstore::{BlobStore, BlobStoreConfig, Error, ErrorKind, Namespace};
use tokio::io::AsyncReadExt;

/// Bytes that are not all alike (so a multipart upload's part order matters).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

async fn read_all(store: &BlobStore, ns: Namespace, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    store.get(ns, key).await.unwrap().read_to_end(&mut out).await.unwrap();
    out
}

/// Everything a user checks on a store, whichever back end it is.
async fn exercise(store: &BlobStore, big: usize) {
    // Round trip, small and big (big is a multipart upload on S3).
    for len in [0, 11, big] {
        let data = pattern(len);
        let blob = store.put_stream(Namespace::Droplets, &data[..], 1 << 40).await.unwrap();
        assert_eq!(blob.key, sha256_hex(&data));
        assert_eq!(blob.sha256, blob.key);
        assert_eq!(blob.size, len as u64);
        assert_eq!(store.size(Namespace::Droplets, &blob.key).await.unwrap(), Some(len as u64));
        assert_eq!(read_all(store, Namespace::Droplets, &blob.key).await, data);
    }
    let hello = store.put_stream(Namespace::Resources, &b"hello world"[..], 100).await.unwrap();
    assert_eq!(hello.key, "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed", "resources are keyed by SHA-1");
    assert!(store.exists(Namespace::Resources, &hello.key).await.unwrap());
    assert!(!store.exists(Namespace::Packages, &hello.sha256).await.unwrap(), "namespaces are apart");

    // Past the limit: refused, nothing stored.
    let before = store.list(Namespace::Packages).await.unwrap();
    let data = pattern(big);
    let err = store.put_stream(Namespace::Packages, &data[..], (big - 1) as u64).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert_eq!(store.list(Namespace::Packages).await.unwrap(), before);
    assert!(!store.exists(Namespace::Packages, &sha256_hex(&data)).await.unwrap());
    // Exactly the limit is fine.
    let small = pattern(1000);
    store.put_stream(Namespace::Packages, &small[..], 1000).await.unwrap();

    // Two puts of the same content at once both succeed and leave one blob.
    let same = pattern(300_000);
    let (a, b) = tokio::join!(
        store.put_stream(Namespace::Buildpacks, &same[..], 1 << 30),
        store.put_stream(Namespace::Buildpacks, &same[..], 1 << 30)
    );
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(store.list(Namespace::Buildpacks).await.unwrap(), vec![sha256_hex(&same)]);

    // put_file: content already stored is the same blob; new content is stored.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("same"), &same).unwrap();
    let again = store.put_file(Namespace::Buildpacks, &dir.path().join("same")).await.unwrap();
    assert_eq!(again.key, sha256_hex(&same));
    std::fs::write(dir.path().join("new"), b"new content").unwrap();
    let new = store.put_file(Namespace::Buildpacks, &dir.path().join("new")).await.unwrap();
    assert_eq!(read_all(store, Namespace::Buildpacks, &new.key).await, b"new content");
    store.delete(Namespace::Buildpacks, &new.key).await.unwrap();
    std::fs::remove_file(dir.path().join("same")).unwrap();
    std::fs::remove_file(dir.path().join("new")).unwrap();

    // get_to_file, delete (twice), missing, bad keys.
    let dest = dir.path().join("droplet.tgz");
    let key = sha256_hex(&pattern(11));
    assert_eq!(store.get_to_file(Namespace::Droplets, &key, &dest).await.unwrap(), 11);
    assert_eq!(std::fs::read(&dest).unwrap(), pattern(11));
    store.delete(Namespace::Droplets, &key).await.unwrap();
    store.delete(Namespace::Droplets, &key).await.unwrap();
    assert!(!store.exists(Namespace::Droplets, &key).await.unwrap());
    let err = store.get(Namespace::Droplets, &key).await.err().expect("deleted blob is gone");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = store.get_to_file(Namespace::Droplets, &key, &dir.path().join("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(common::listing(dir.path()), vec!["droplet.tgz"], "a failed get_to_file leaves nothing");
    for bad in ["../../etc/passwd", "ABC", &"g".repeat(64)] {
        let err = store.get(Namespace::Packages, bad).await.err().expect("bad key refused");
        assert!(matches!(err, Error::BadKey { .. }), "{err}");
        assert!(store.delete(Namespace::Packages, bad).await.is_err());
    }
    let mut droplets = store.list(Namespace::Droplets).await.unwrap();
    droplets.sort();
    let mut want = vec![sha256_hex(&[]), sha256_hex(&pattern(big))];
    want.sort();
    assert_eq!(droplets, want);
}

#[tokio::test]
async fn local_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let store = BlobStore::open(&BlobStoreConfig::Local { root: root.clone() }).unwrap();
    exercise(&store, 3 << 20).await;
    assert!(common::listing(&root.join("tmp")).is_empty(), "no temp files left");
    // Reopening sees the same blobs.
    let again = BlobStore::open(&BlobStoreConfig::Local { root }).unwrap();
    assert_eq!(again.list(Namespace::Droplets).await.unwrap(), store.list(Namespace::Droplets).await.unwrap());
}

#[tokio::test]
async fn s3_store_on_moto() {
    let moto = common::Moto::start();
    let mut config = moto.config();
    config.secret_access_key = "s3cr3t-that-must-not-leak".into();
    let store = BlobStore::open(&BlobStoreConfig::S3(config.clone())).unwrap();
    for shown in [format!("{config:?}"), format!("{store:?}")] {
        assert!(!shown.contains("s3cr3t"), "the secret shows in {shown}");
    }
    exercise(&store, 20 << 20).await;
    let BlobStore::S3(s3) = &store else { unreachable!() };
    assert_eq!(s3.temp_objects().await.unwrap(), 0, "no temp objects left");
}

#[tokio::test]
async fn s3_store_reports_a_missing_bucket_and_bad_config() {
    let moto = common::Moto::start();
    let mut config = moto.config();
    config.bucket = "no-such-bucket".into();
    let store = BlobStore::open(&BlobStoreConfig::S3(config.clone())).unwrap();
    let err = store.put_stream(Namespace::Packages, &b"x"[..], 10).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
    config.bucket = String::new();
    assert!(matches!(BlobStore::open(&BlobStoreConfig::S3(config)), Err(Error::S3Config(_))));
}

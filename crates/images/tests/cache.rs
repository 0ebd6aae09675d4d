//! Cache management and metrics: `gc` under a threshold removes unused layers least recently used
//! first and never one in use, pinned or being pulled; metrics count hits, misses and pulls across
//! real pulls from a registry on loopback.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use hearth_images::{Digest, Error, PullOptions, Puller, RegistryConfig, RootfsSpec, Store, StoreConfig};

const LAYER: u64 = 100_000;

fn store_with(config: StoreConfig) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("store"), config).unwrap();
    (dir, store)
}

/// A layer of exactly `LAYER` bytes of content, distinct per name.
fn layer(store: &Store, name: &str) -> Digest {
    let data = name.as_bytes().iter().cycle().take(LAYER as usize).copied().collect::<Vec<u8>>();
    store.import_layer(&TarBuilder::default().file(name, &data, 0o644).build()[..]).unwrap().diff_id
}

fn puller(registry: &Registry, store: &Store) -> Puller {
    Puller::new(
        store.clone(),
        RegistryConfig { insecure_registries: vec![registry.host.clone()], ..Default::default() },
    )
}

#[test]
fn gc_removes_unused_layers_least_recently_used_first_and_never_one_in_use() {
    let (_dir, store) = store_with(StoreConfig { gc_grace: Duration::ZERO, ..Default::default() });
    let _cleanup = DestroyAll(store.clone());
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|n| layer(&store, n));
    assert_eq!(store.metrics().bytes_used, 4 * LAYER);
    // Use order, oldest first: c (imported only), a (a container came and went), b (mounted now); d is pinned.
    std::thread::sleep(Duration::from_millis(20));
    store.create_rootfs("gone", &RootfsSpec { layers: vec![a.clone()], ..Default::default() }).unwrap();
    store.destroy_rootfs("gone").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let live = store.create_rootfs("live", &RootfsSpec { layers: vec![b.clone()], ..Default::default() }).unwrap();
    store.pin("base", std::slice::from_ref(&d)).unwrap();

    // Over a threshold of three layers, only the least recently used goes.
    let report = store.gc_to(3 * LAYER).unwrap();
    assert_eq!(report.removed, vec![c.clone()]);
    assert_eq!((report.bytes_freed, report.bytes_used), (LAYER, 3 * LAYER));
    assert!(!store.has_layer(&c) && store.has_layer(&a));
    // Down to nothing: the unused one goes; the mounted and the pinned ones stay.
    let report = store.gc_to(0).unwrap();
    assert_eq!(report.removed, vec![a.clone()]);
    assert_eq!(report.bytes_in_use, 2 * LAYER);
    assert!(store.has_layer(&b) && store.has_layer(&d));
    assert_eq!(std::fs::read(live.path.join("b")).unwrap().len() as u64, LAYER, "the mounted layer is intact");

    // Once the container is gone and the pin removed, they go too.
    store.destroy_rootfs("live").unwrap();
    store.unpin("base").unwrap();
    let report = store.gc_to(0).unwrap();
    assert_eq!(report.removed, vec![d, b], "d was last used when imported, before b was mounted");
    let m = store.metrics();
    assert_eq!((m.gc_runs, m.gc_layers_removed, m.gc_bytes_freed), (3, 4, 4 * LAYER));
    assert_eq!((m.layers, m.bytes_used), (0, 0));
    assert_eq!(leftovers(&store), Vec::<String>::new());
}

#[test]
fn gc_keeps_recently_used_layers_and_refuses_bad_pins() {
    let (_dir, store) = store_with(StoreConfig { cache_threshold: Some(0), ..Default::default() });
    let a = layer(&store, "a");
    assert_eq!(store.gc().unwrap().removed, Vec::<Digest>::new(), "within the grace period");
    assert!(store.has_layer(&a));
    assert!(matches!(store.pin("../x", std::slice::from_ref(&a)), Err(Error::BadPinName(_))));
    let missing = Digest::of(b"nope");
    assert!(matches!(store.pin("p", &[a.clone(), missing]), Err(Error::MissingLayer(_))));
    assert!(store.pins().unwrap().is_empty(), "a refused pin writes nothing");
    // The host stack pins itself.
    let stack = store.host_stack(std::path::Path::new("/")).unwrap();
    assert_eq!(store.pins().unwrap()[0].layers, stack.layers);
}

#[test]
fn gc_refuses_to_guess_the_layers_of_a_mounted_root_filesystem_without_a_record() {
    let (_dir, store) = store_with(StoreConfig { gc_grace: Duration::ZERO, ..Default::default() });
    let _cleanup = DestroyAll(store.clone());
    let a = layer(&store, "a");
    store.create_rootfs("old", &RootfsSpec { layers: vec![a.clone()], ..Default::default() }).unwrap();
    // What a rootfs mounted by a version without records looks like.
    std::fs::remove_file(store.root().join("rootfs/old/rootfs.json")).unwrap();
    let err = store.gc_to(0).unwrap_err();
    assert!(matches!(err, Error::Malformed { ref what, .. } if what.contains("old")), "{err}");
    assert!(store.has_layer(&a), "nothing removed");
    store.destroy_rootfs("old").unwrap();
    assert_eq!(store.gc_to(0).unwrap().removed, vec![a]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_over_the_threshold_collects_other_images_but_not_its_own() {
    let registry = Registry::start();
    let one = busybox_image(Format::Oci);
    let two = TestImage::new(
        Format::Oci,
        vec![TestLayer::gzip(TarBuilder::default().file("two", &[2; 50_000], 0o644).build(), Format::Oci)],
    );
    registry.push("gc/one:1", &one).await;
    registry.push("gc/two:1", &two).await;
    let config = StoreConfig { cache_threshold: Some(0), gc_grace: Duration::ZERO, ..Default::default() };
    let (_dir, store) = store_with(config);
    let p = puller(&registry, &store);
    let o = PullOptions::default();

    let first = p.pull(&registry.reference("gc/one:1"), &o).await.unwrap();
    assert!(first.diff_ids().iter().all(|d| store.has_layer(d)), "a pull's own layers survive its collection");
    let second = p.pull(&registry.reference("gc/two:1"), &o).await.unwrap();
    assert!(store.has_layer(&second.layers[0].diff_id));
    assert!(first.diff_ids().iter().all(|d| !store.has_layer(d)), "the other image's unused layers went");
    assert!(store.image(&registry.reference("gc/one:1")).is_err(), "its record went with them");
    let m = store.metrics();
    assert_eq!((m.pulls, m.pull_cache_misses, m.pull_cache_hits, m.layer_downloads), (2, 2, 0, 3));
    assert_eq!((m.gc_runs, m.gc_layers_removed, m.layers), (2, 2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_imported_as_a_stack_is_pinned_and_usable() {
    let registry = Registry::start();
    registry.push("stacks/busybox:1", &busybox_image(Format::Oci)).await;
    let config = StoreConfig { gc_grace: Duration::ZERO, ..Default::default() };
    let (_dir, store) = store_with(config);
    let _cleanup = DestroyAll(store.clone());
    let reference = registry.reference("stacks/busybox:1");
    let image = puller(&registry, &store).pull(&reference, &PullOptions::default()).await.unwrap();
    assert!(matches!(store.import_stack("busybox", "no.such/image:1"), Err(Error::MissingImage(_))));
    let stack = store.import_stack("busybox", &reference).unwrap();
    assert_eq!((stack.name.as_str(), &stack.layers), ("busybox", &image.diff_ids()));

    assert_eq!(store.gc_to(0).unwrap().removed, Vec::<Digest>::new(), "a stack's layers are pinned");
    assert_eq!(store.metrics().pinned_layers, 2);
    let droplet = store.import_layer(&TarBuilder::default().file("app", b"droplet", 0o644).build()[..]).unwrap();
    let rootfs = store.create_rootfs("app", &stack.with_layers(&[droplet.diff_id])).unwrap();
    assert_eq!(std::fs::read_to_string(rootfs.path.join("etc/motd")).unwrap(), "hello from layer one\n");
    assert_eq!(std::fs::read(rootfs.path.join("app")).unwrap(), b"droplet");
    store.destroy_rootfs("app").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_and_gc_never_take_a_layer_from_a_root_filesystem() {
    let registry = Registry::start();
    registry.push("race/one:1", &busybox_image(Format::Oci)).await;
    // No grace period: only leases and root filesystem records protect layers here.
    let config = StoreConfig { gc_grace: Duration::ZERO, ..Default::default() };
    let (_dir, store) = store_with(config);
    let _cleanup = DestroyAll(store.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                store.gc_to(0).unwrap();
                runs += 1;
            }
            runs
        })
    };
    let p = puller(&registry, &store);
    let mut mounted = 0;
    for i in 0..8 {
        // The pull always completes: a layer it found stored is leased until its record is written.
        let image = p.pull(&registry.reference("race/one:1"), &PullOptions::default()).await.unwrap();
        let spec = RootfsSpec { layers: image.diff_ids(), ..Default::default() };
        match store.create_rootfs(&format!("r{i}"), &spec) {
            Ok(rootfs) => {
                mounted += 1;
                tokio::time::sleep(Duration::from_millis(20)).await; // the collector keeps running
                assert!(spec.layers.iter().all(|l| store.has_layer(l)), "a mounted layer is never collected");
                assert_eq!(std::fs::read_to_string(rootfs.path.join("etc/motd")).unwrap(), "hello from layer one\n");
            }
            // Collected between the pull and the request (no grace period): refused cleanly.
            Err(Error::MissingLayer(_)) => assert!(!store.rootfs_ids().unwrap().contains(&format!("r{i}"))),
            Err(e) => panic!("{e}"),
        }
    }
    let runs = collector_stop(stop, collector);
    assert!(runs > 0);
    let m = store.metrics();
    assert_eq!(m.pulls, 8);
    assert_eq!(m.pull_cache_hits + m.pull_cache_misses, 8);
    assert_eq!(m.rootfs_requests, 8);
    assert_eq!(m.rootfs_misses, 8 - mounted);
    for id in store.rootfs_ids().unwrap() {
        store.destroy_rootfs(&id).unwrap();
    }
    store.gc_to(0).unwrap();
    assert_eq!(leftovers(&store), Vec::<String>::new(), "nothing half-removed or half-written");
}

fn collector_stop(stop: Arc<AtomicBool>, collector: std::thread::JoinHandle<u64>) -> u64 {
    stop.store(true, Ordering::Relaxed);
    collector.join().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_hits_misses_and_pulls_across_real_pulls() {
    let registry = Registry::start();
    let base = TestLayer::gzip(busybox_layer(), Format::Oci);
    let one = TestImage::new(Format::Oci, vec![base.clone(), TestLayer::zstd(whiteout_layer())]);
    let two = TestImage::new(
        Format::Oci,
        vec![base.clone(), TestLayer::gzip(TarBuilder::default().file("two", b"2", 0o644).build(), Format::Oci)],
    );
    registry.push("m/one:1", &one).await;
    registry.push("m/two:1", &two).await;
    let (_dir, store) = store_with(StoreConfig::default());
    let _cleanup = DestroyAll(store.clone());
    let p = puller(&registry, &store);
    let o = PullOptions::default();

    let image = p.pull(&registry.reference("m/one:1"), &o).await.unwrap(); // miss: 2 downloads
    p.pull(&registry.reference("m/one:1"), &o).await.unwrap(); // hit: 2 layers found
    p.pull(&registry.reference("m/two:1"), &o).await.unwrap(); // miss: 1 download, 1 found
    store.create_rootfs("ok", &RootfsSpec { layers: image.diff_ids(), ..Default::default() }).unwrap();
    let missing = RootfsSpec { layers: vec![Digest::of(b"absent")], ..Default::default() };
    assert!(store.create_rootfs("bad", &missing).is_err());

    let m = store.metrics();
    assert_eq!((m.pulls, m.pull_cache_hits, m.pull_cache_misses), (3, 1, 2));
    assert_eq!((m.layer_downloads, m.layer_cache_hits), (3, 3));
    assert_eq!((m.rootfs_requests, m.rootfs_misses, m.root_filesystems), (2, 1, 1));
    let blobs: u64 = one.layers.iter().chain(&two.layers[1..]).map(|l| l.blob.len() as u64).sum();
    assert_eq!(m.bytes_downloaded, blobs);
    assert_eq!(m.layers, 3);
    let on_disk: u64 = store.layers().unwrap().iter().map(|d| store.layer(d).unwrap().bytes).sum();
    assert_eq!(m.bytes_used, on_disk);
    assert!(m.bytes_used > std::fs::metadata(BUSYBOX).unwrap().len());
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["pull_cache_hits"], 1);
    assert_eq!(json["layer_downloads"], 3);
    store.destroy_rootfs("ok").unwrap();
}

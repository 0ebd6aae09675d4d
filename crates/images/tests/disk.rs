//! Disk limits on root filesystems' writable layers (needs root): writes stop near the limit for
//! the container's mapped uid and for root, other root filesystems are untouched, usage grows and
//! shrinks, state survives a new store handle, and destroy leaves no loop device or mount.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hearth_images::{DiskLimit, DiskLimitBackend, Error, RootfsSpec, Store, StoreConfig};

const MIB: u64 = 1 << 20;

/// busybox plus a world-writable `/scratch` the mapped uid can write to.
fn spec(store: &Store, disk_limit: Option<u64>) -> RootfsSpec {
    let base = store.import_layer(&busybox_layer()[..]).unwrap();
    let scratch = store.import_layer(&TarBuilder::default().dir_mode("scratch", 0o1777).build()[..]).unwrap();
    RootfsSpec { layers: vec![base.diff_id, scratch.diff_id], binds: vec![], disk_limit }
}

/// Writes `mib` MiB of zeros to `file` (inside the root filesystem) as host uid 100000, the
/// container's mapped root, through the root filesystem's own `/bin`. Returns the bytes written
/// and whether `dd` reported a full disk.
fn dd_as_mapped_uid(root: &std::path::Path, file: &str, mib: u64) -> (u64, bool) {
    let out = Command::new("unshare")
        .args(["--mount", "--fork", "chroot", "--userspec=100000:100000"])
        .arg(root)
        .args(["/bin/busybox", "dd", &format!("of={file}"), "bs=1M", &format!("count={mib}")])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let full = !out.status.success() && stderr.contains("No space left");
    assert!(out.status.success() || full, "dd failed otherwise: {stderr}");
    let written = std::fs::metadata(root.join(file.trim_start_matches('/'))).unwrap().len();
    (written, full)
}

/// Writes 1 MiB chunks as root (this process) until the disk is full or `mib` are written.
fn write_as_root(path: &std::path::Path, mib: u64) -> (u64, Option<i32>) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![7u8; MIB as usize];
    for _ in 0..mib {
        if let Err(e) = file.write_all(&chunk).and_then(|_| file.sync_data()) {
            return (std::fs::metadata(path).unwrap().len(), e.raw_os_error());
        }
    }
    (std::fs::metadata(path).unwrap().len(), None)
}

#[test]
fn a_disk_limit_stops_writes_near_it_and_leaves_other_root_filesystems_alone() {
    let (_dir, store) = store();
    let _cleanup = DestroyAll(store.clone());
    let small = store.create_rootfs("small", &spec(&store, Some(16 * MIB))).unwrap();
    let large = store.create_rootfs("large", &spec(&store, Some(64 * MIB))).unwrap();
    let free = store.create_rootfs("free", &spec(&store, None)).unwrap();
    assert_eq!(small.disk_limit, DiskLimit::Enforced { bytes: 16 * MIB });
    assert_eq!(free.disk_limit, DiskLimit::Unlimited);
    assert_eq!(loop_devices_under(store.root()).len(), 2, "one loop device per limited root filesystem");
    assert!(store.disk_usage("small").unwrap().bytes < MIB, "an empty writable layer uses next to nothing");

    // The container's (mapped) user fills its disk: dd stops with ENOSPC near the limit.
    let (written, full) = dd_as_mapped_uid(&small.path, "/scratch/fill", 40);
    assert!(full, "dd ran out of space");
    assert!((14 * MIB..=17 * MIB).contains(&written), "stopped near 16 MiB: {written}");
    let usage = store.disk_usage("small").unwrap();
    assert!(usage.bytes.abs_diff(written) < MIB, "usage {} tracks the {written} bytes written", usage.bytes);
    assert_eq!(usage.limit, DiskLimit::Enforced { bytes: 16 * MIB });

    // The others are unaffected: root writes 32 MiB into the 64 MiB one and 80 MiB into the unlimited one.
    assert_eq!(write_as_root(&large.path.join("data"), 32), (32 * MIB, None));
    assert_eq!(write_as_root(&free.path.join("data"), 80), (80 * MIB, None));
    assert!(store.disk_usage("free").unwrap().bytes >= 80 * MIB);
    // Root is held to the limit as well (a file system's size, not a per-user quota).
    let (written, errno) = write_as_root(&large.path.join("more"), 64);
    assert_eq!(errno, Some(28), "ENOSPC for root too");
    assert!((28 * MIB..=34 * MIB).contains(&written), "the rest of 64 MiB: {written}");

    // Usage shrinks when files go; a copied-up file from a lower layer counts once written.
    std::fs::remove_file(small.path.join("scratch/fill")).unwrap();
    assert!(store.disk_usage("small").unwrap().bytes < MIB, "space comes back");
    std::fs::write(small.path.join("etc/motd"), vec![b'x'; 3 * MIB as usize]).unwrap();
    assert!(store.disk_usage("small").unwrap().bytes >= 3 * MIB);

    // A restarted process (a new handle on the same store) reads usage and destroys.
    let again = Store::open(store.root()).unwrap();
    assert_eq!(again.disk_usage("small").unwrap().limit, DiskLimit::Enforced { bytes: 16 * MIB });
    assert!(again.disk_usage("large").unwrap().bytes >= 60 * MIB);
    for id in ["small", "large", "free"] {
        again.destroy_rootfs(id).unwrap();
        again.destroy_rootfs(id).unwrap();
    }
    assert!(matches!(again.disk_usage("small"), Err(Error::MissingRootfs(_))));
    assert_eq!(loop_devices_under(store.root()), Vec::<String>::new(), "loop devices released");
    assert!(hearth_images::mounts_under(store.root()).unwrap().is_empty(), "no mounts left");
    assert!(store.rootfs_ids().unwrap().is_empty(), "no images or directories left");
}

#[test]
fn where_limits_cannot_be_enforced_usage_is_still_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig { disk_limits: DiskLimitBackend::Unenforced, ..Default::default() };
    let store = Store::open_with(dir.path().join("store"), config).unwrap();
    let _cleanup = DestroyAll(store.clone());
    let rootfs = store.create_rootfs("c", &spec(&store, Some(8 * MIB))).unwrap();
    assert!(
        matches!(&rootfs.disk_limit, DiskLimit::NotEnforced { bytes, reason } if *bytes == 8 * MIB && !reason.is_empty()),
        "{:?}",
        rootfs.disk_limit
    );
    assert_eq!(write_as_root(&rootfs.path.join("big"), 12), (12 * MIB, None), "not enforced");
    let usage = store.disk_usage("c").unwrap();
    assert!((12 * MIB..13 * MIB).contains(&usage.bytes), "walked usage {}", usage.bytes);
    assert!(loop_devices_under(store.root()).is_empty());
    store.destroy_rootfs("c").unwrap();
    assert!(store.rootfs_ids().unwrap().is_empty());
    assert!(hearth_images::mounts_under(store.root()).unwrap().is_empty());
}

#[test]
fn a_too_small_limit_is_refused_and_changes_nothing() {
    let (_dir, store) = store();
    let _cleanup = DestroyAll(store.clone());
    let spec = spec(&store, Some(1000));
    let err = store.create_rootfs("tiny", &spec).unwrap_err();
    assert!(matches!(err, Error::BadDiskLimit { bytes: 1000, .. }), "{err}");
    assert!(store.rootfs_ids().unwrap().is_empty());
    assert!(loop_devices_under(store.root()).is_empty());
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
fn twenty_limited_creates_and_destroys_leave_nothing_and_are_timed() {
    let (_dir, store) = store();
    let _cleanup = DestroyAll(store.clone());
    let unlimited = spec(&store, None);
    let limited = spec(&store, Some(256 * MIB));
    // Interleaved, so a busy machine slows both alike.
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for i in 0..20 {
        for (spec, samples) in [(&unlimited, &mut without), (&limited, &mut with)] {
            let started = Instant::now();
            let rootfs = store.create_rootfs(&format!("c{i}"), spec).unwrap();
            std::fs::write(rootfs.path.join("scratch/x"), b"hello").unwrap();
            store.destroy_rootfs(&format!("c{i}")).unwrap();
            samples.push(started.elapsed());
        }
    }
    let timings = [format!("no limit: median {:?}", median(without)), format!("256 MiB limit: {:?}", median(with))];
    eprintln!("rootfs create+destroy (20 each): {}", timings.join(", "));
    assert_eq!(loop_devices_under(store.root()), Vec::<String>::new());
    assert!(hearth_images::mounts_under(store.root()).unwrap().is_empty());
    assert!(store.rootfs_ids().unwrap().is_empty());
    let templates = std::fs::read_dir(store.root().join("disk-templates")).unwrap().count();
    assert_eq!(templates, 1, "one formatted template per size, made once");
}

#[test]
fn after_a_reboot_an_unmounted_disk_is_an_error_and_destroy_still_cleans_up() {
    let (_dir, store) = store();
    let _cleanup = DestroyAll(store.clone());
    let rootfs = store.create_rootfs("r", &spec(&store, Some(8 * MIB))).unwrap();
    // What a reboot leaves: the files, no mounts, no loop device.
    for mount in hearth_images::mounts_under(rootfs.path.parent().unwrap()).unwrap() {
        rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::empty()).unwrap();
    }
    assert!(loop_devices_under(store.root()).is_empty());
    let err = store.disk_usage("r").unwrap_err();
    assert!(matches!(err, Error::DiskSetup(ref m) if m.contains("not mounted")), "{err}");
    store.destroy_rootfs("r").unwrap();
    assert!(store.rootfs_ids().unwrap().is_empty());
}

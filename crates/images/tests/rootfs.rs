//! Overlay root filesystems (needs root): image layers with whiteouts applied, a droplet layer on
//! top, the host stack, and destroy leaving nothing behind.

mod common;

use std::process::Command;

use common::*;
use hearth_images::{Error, PullOptions, Puller, RegistryConfig, RootfsSpec};

/// Runs a command inside `root` with `chroot` in a private mount namespace and returns stdout.
fn run_in(root: &std::path::Path, script: &str) -> String {
    let out = Command::new("unshare")
        .args(["--mount", "--fork", "chroot"])
        .arg(root)
        .args(["/bin/sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_rootfs_applies_whiteouts_takes_a_droplet_and_unmounts_cleanly() {
    let registry = Registry::start();
    registry.push("apps/busybox:1", &busybox_image(Format::Oci)).await;
    let (_dir, store) = store();
    let puller = Puller::new(
        store.clone(),
        RegistryConfig { insecure_registries: vec![registry.host.clone()], ..Default::default() },
    );
    let image = puller.pull(&registry.reference("apps/busybox:1"), &PullOptions::default()).await.unwrap();
    let droplet =
        TarBuilder::default().dir("home/app").file("home/app/run", b"#!/bin/sh\necho droplet says hi\n", 0o755).build();
    let droplet = store.import_layer(&droplet[..]).unwrap();
    let stack = store.image_stack(&registry.reference("apps/busybox:1")).unwrap();
    let spec = stack.with_layers(std::slice::from_ref(&droplet.diff_id));
    assert_eq!(spec.layers.len(), 3);

    let rootfs = store.create_rootfs("web-0", &spec).unwrap();
    let root = &rootfs.path;
    assert_eq!(std::fs::read_to_string(root.join("etc/motd")).unwrap(), "hello from layer one\n");
    assert_eq!(std::fs::read_to_string(root.join("etc/added")).unwrap(), "added in layer two\n");
    assert!(!exists(&root.join("etc/removed")), "whiteout applied");
    assert!(!exists(&root.join("var/cache/old")), "opaque directory hides the lower one");
    assert!(exists(&root.join("var/cache/new")));
    assert_eq!(
        run_in(root, "/home/app/run; cat /etc/motd; ls /etc"),
        "droplet says hi\nhello from layer one\nadded\nmotd\n"
    );

    // Writes land in the container's upper directory, never in a shared layer.
    std::fs::write(root.join("etc/motd"), "changed").unwrap();
    assert_eq!(std::fs::read_to_string(rootfs.upper.join("etc/motd")).unwrap(), "changed");
    assert_eq!(
        std::fs::read_to_string(store.layer_dir(&image.layers[0].diff_id).join("etc/motd")).unwrap(),
        "hello from layer one\n"
    );
    // A second container from the same layers sees the originals.
    let other = store.create_rootfs("web-1", &spec).unwrap();
    assert_eq!(std::fs::read_to_string(other.path.join("etc/motd")).unwrap(), "hello from layer one\n");
    assert!(matches!(store.create_rootfs("web-1", &spec), Err(Error::RootfsExists(_))));

    store.destroy_rootfs("web-0").unwrap();
    store.destroy_rootfs("web-1").unwrap();
    store.destroy_rootfs("web-1").unwrap(); // idempotent
    store.destroy_rootfs("never-made").unwrap();
    assert!(store.rootfs_ids().unwrap().is_empty());
    assert!(hearth_images::mounts_under(store.root()).unwrap().is_empty(), "no mounts left");
    assert!(store.has_layer(&image.layers[0].diff_id), "layers outlive containers");
}

#[test]
fn a_failed_create_cleans_up_and_bad_ids_are_refused() {
    let (_dir, store) = store();
    let missing = hearth_images::Digest::of(b"no such layer");
    let spec = RootfsSpec { layers: vec![missing.clone()], ..Default::default() };
    assert!(matches!(store.create_rootfs("c1", &spec), Err(Error::MissingLayer(d)) if d == missing));
    let layer = store.import_layer(&TarBuilder::default().symlink("usr", "/").build()[..]).unwrap();
    // An image whose `usr` is a symlink to `/` must not send a bind mount onto the host.
    let spec = RootfsSpec {
        layers: vec![layer.diff_id],
        binds: vec![hearth_images::ReadOnlyBind { source: "/usr".into(), target: "/usr".into() }],
        disk_limit: None,
    };
    assert!(store.create_rootfs("c2", &spec).is_err());
    for bad in ["", "../x", "a/b", ".hidden", &"x".repeat(129)] {
        assert!(matches!(store.create_rootfs(bad, &RootfsSpec::default()), Err(Error::BadRootfsId(_))), "{bad:?}");
    }
    assert!(store.rootfs_ids().unwrap().is_empty(), "failed creates removed their directories");
    assert!(hearth_images::mounts_under(store.root()).unwrap().is_empty());
}

#[test]
fn the_host_stack_runs_host_binaries_read_only_without_secrets() {
    let (_dir, store) = store();
    let stack = store.host_stack(std::path::Path::new("/")).unwrap();
    assert_eq!(store.host_stack(std::path::Path::new("/")).unwrap(), stack, "same host, same stack layer");
    let app =
        store
            .import_layer(
                &TarBuilder::default()
                    .dir("home/vcap/app")
                    .file("home/vcap/app/hello.txt", b"offline\n", 0o644)
                    .build()[..],
            )
            .unwrap();
    let rootfs = store.create_rootfs("app-0", &stack.with_layers(&[app.diff_id])).unwrap();
    let root = &rootfs.path;

    assert_eq!(run_in(root, "cat /home/vcap/app/hello.txt; test -x /usr/bin/env && echo env"), "offline\nenv\n");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:") && passwd.contains("\nvcap:x:2000:2000:"), "{passwd}");
    assert!(!exists(&root.join("etc/shadow")), "root-only files are not copied");
    let err = std::fs::write(root.join("usr/planted"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(30), "the host's /usr is read-only (EROFS): {err}");
    assert!(!std::path::Path::new("/usr/planted").exists());
    std::fs::write(root.join("tmp/scratch"), "ok").unwrap();

    store.destroy_rootfs("app-0").unwrap();
    assert!(hearth_images::mounts_under(store.root()).unwrap().is_empty(), "no mounts left");
    assert!(store.rootfs_ids().unwrap().is_empty());
}

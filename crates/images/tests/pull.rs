//! Pulls from a real registry on loopback (Debian's `docker-registry`), with images the tests
//! build and push themselves.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use hearth_images::{Credentials, Error, PullEvent, PullOptions, Puller, RegistryConfig};

fn puller(registry: &Registry, store: &hearth_images::Store) -> Puller {
    Puller::new(
        store.clone(),
        RegistryConfig { insecure_registries: vec![registry.host.clone()], ..Default::default() },
    )
}

/// A puller that unpacks every layer while it downloads (by default only large ones do).
fn streaming_puller(registry: &Registry, store: &hearth_images::Store) -> Puller {
    Puller::new(
        store.clone(),
        RegistryConfig { insecure_registries: vec![registry.host.clone()], whole_layer_max: 0, ..Default::default() },
    )
}

/// Both ways a layer is unpacked: gathered whole, and streamed.
const PULLERS: [fn(&Registry, &hearth_images::Store) -> Puller; 2] = [puller, streaming_puller];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_a_gzip_and_zstd_image_by_tag_then_by_digest_from_the_cache() {
    let registry = Registry::start();
    let image = busybox_image(Format::Oci);
    let manifest = registry.push("apps/busybox:1", &image).await;
    let (_dir, store) = store();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let options = PullOptions {
        progress: Some(Arc::new(move |e: PullEvent| sink.lock().unwrap().push(e))),
        ..Default::default()
    };

    let started = Instant::now();
    let record = puller(&registry, &store).pull(&registry.reference("apps/busybox:1"), &options).await.unwrap();
    eprintln!("pulled a {}-layer image in {:?}", record.layers.len(), started.elapsed());

    assert_eq!(record.manifest_digest.as_str(), manifest);
    assert_eq!(record.reference, registry.reference("apps/busybox:1"));
    let diff_ids: Vec<String> = record.diff_ids().iter().map(|d| d.to_string()).collect();
    assert_eq!(diff_ids, image.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>());
    assert_eq!(record.runtime.argv(), vec!["/bin/sh", "-c", "cat /etc/motd"]);
    assert_eq!(record.runtime.env, vec!["PATH=/bin", "GREETING=hello"]);
    assert_eq!(
        (record.runtime.working_dir.as_deref(), record.runtime.user.as_deref()),
        (Some("/home"), Some("1000:1000"))
    );
    let base = store.layer_dir(&record.layers[0].diff_id);
    assert_eq!(std::fs::read(base.join("bin/busybox")).unwrap(), std::fs::read(BUSYBOX).unwrap());
    assert_eq!(store.blob(&record.manifest_digest).unwrap(), image.manifest_bytes());
    assert_eq!(store.image(&registry.reference("apps/busybox:1")).unwrap(), record);
    let m = metrics(&store);
    assert_eq!((m.pulls, m.layer_downloads, m.layer_cache_hits, m.layers), (1, 2, 0, 2));

    // Progress: the total, then bytes per layer up to each layer's size, then stored.
    let events = events.lock().unwrap().clone();
    let total: u64 = image.layers.iter().map(|l| l.blob.len() as u64).sum();
    assert!(matches!(&events[0], PullEvent::Resolved { layers: 2, total_bytes, .. } if *total_bytes == total));
    for layer in &image.layers {
        let last = events.iter().rev().find_map(|e| match e {
            PullEvent::LayerBytes { digest, done, total } if digest.as_str() == layer.digest => Some((*done, *total)),
            _ => None,
        });
        assert_eq!(last, Some((layer.blob.len() as u64, layer.blob.len() as u64)));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, PullEvent::LayerStored { digest, .. } if digest.as_str() == layer.digest))
        );
    }

    let by_digest = format!("{}@{manifest}", registry.reference("apps/busybox"));
    let again = puller(&registry, &store).pull(&by_digest, &PullOptions::default()).await.unwrap();
    assert_eq!(again.manifest_digest, record.manifest_digest);
    let m = metrics(&store);
    assert_eq!((m.pulls, m.layer_downloads, m.layer_cache_hits), (2, 2, 2), "layers come from the store");
    for layer in &image.layers {
        assert_eq!(registry.blob_gets(&layer.digest), 1, "each blob fetched once");
        // Asked as a range from byte 0, so oci-client leaves the hashing to the pull (once).
        assert_eq!(registry.ranged_blob_gets(&layer.digest), 1, "each blob fetched as a range");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_or_manifest_list_yields_the_linux_amd64_image() {
    let registry = Registry::start();
    let (_dir, store) = store();
    for format in [Format::Oci, Format::Docker] {
        let mut arm = TestImage::new(
            format,
            vec![TestLayer::gzip(TarBuilder::default().file("arch", b"arm64", 0o644).build(), format)],
        );
        arm.architecture = "arm64";
        let amd = busybox_image(format);
        let arm_digest = registry.push("multi/arch:arm", &arm).await;
        let amd_digest = registry.push("multi/arch:amd", &amd).await;
        let entries = [
            (arm_digest.as_str(), "arm64", arm.manifest_bytes().len(), "linux"),
            (amd_digest.as_str(), "amd64", amd.manifest_bytes().len(), "windows"),
            (amd_digest.as_str(), "amd64", amd.manifest_bytes().len(), "linux"),
        ];
        let index = registry.push_index("multi/arch:latest", format, &entries).await;

        let record = puller(&registry, &store)
            .pull(&registry.reference("multi/arch:latest"), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(record.manifest_digest.as_str(), amd_digest);
        assert_eq!(record.index_digest.as_ref().map(|d| d.to_string()), Some(index));
        assert!(
            !store.has_layer(&hearth_images::Digest::parse(&arm.layers[0].diff_id).unwrap()),
            "arm64 layer not pulled"
        );
    }
    // An index without the platform is an error naming it.
    let mut arm = TestImage::new(Format::Oci, vec![TestLayer::gzip(TarBuilder::default().build(), Format::Oci)]);
    arm.architecture = "arm64";
    let arm_digest = registry.push("multi/arm:one", &arm).await;
    let entries = [(arm_digest.as_str(), "arm64", arm.manifest_bytes().len(), "linux")];
    registry.push_index("multi/arm:latest", Format::Oci, &entries).await;
    let err = puller(&registry, &store)
        .pull(&registry.reference("multi/arm:latest"), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoMatchingPlatform { ref platform, .. } if platform == "linux/amd64"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_and_token_auth_registries_need_the_right_credentials() {
    for (token, registry) in [
        (false, Registry::start_with_basic_auth("alice", "s3cret")),
        (true, Registry::start_with_token_auth("alice", "s3cret")),
    ] {
        registry.push("private/app:1", &busybox_image(Format::Docker)).await;
        let reference = registry.reference("private/app:1");
        let (_dir, store) = store();

        let anonymous = puller(&registry, &store).pull(&reference, &PullOptions::default()).await.unwrap_err();
        assert!(matches!(anonymous, Error::Registry { .. }), "{anonymous}");
        let wrong = PullOptions {
            credentials: Credentials::Basic { username: "alice".into(), password: "nope".into() },
            ..Default::default()
        };
        assert!(puller(&registry, &store).pull(&reference, &wrong).await.is_err());
        assert_eq!(leftovers(&store), Vec::<String>::new(), "refused pulls leave nothing");

        let right = PullOptions {
            credentials: Credentials::Basic { username: "alice".into(), password: "s3cret".into() },
            ..Default::default()
        };
        let before = registry.tokens_issued();
        let record = puller(&registry, &store).pull(&reference, &right).await.unwrap();
        assert_eq!(record.layers.len(), 2);
        assert_eq!(registry.tokens_issued() > before, token, "bearer tokens used only where the registry asks");
        assert!(format!("{:?}", right.credentials).contains("redacted"), "passwords never printed");
    }
}

/// The server holds one puller for every tenant: the credentials one pull brought (and the
/// tokens they earned) never serve another pull, and a refused pull does not spoil a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_puller_never_lends_one_pulls_credentials_to_another() {
    for registry in
        [Registry::start_with_basic_auth("alice", "s3cret"), Registry::start_with_token_auth("alice", "s3cret")]
    {
        registry.push("private/app:1", &busybox_image(Format::Docker)).await;
        let reference = registry.reference("private/app:1");
        let (_dir, store) = store();
        let shared = puller(&registry, &store);
        let with = |password: &str| PullOptions {
            credentials: Credentials::Basic { username: "alice".into(), password: password.into() },
            ..Default::default()
        };
        let anonymous = PullOptions::default();

        assert!(shared.pull(&reference, &anonymous).await.is_err(), "anonymous is refused");
        shared.pull(&reference, &with("s3cret")).await.expect("the right password after a refusal");
        for (who, options) in [("anonymous", &anonymous), ("a wrong password", &with("nope"))] {
            let err = shared.pull(&reference, options).await.unwrap_err();
            assert!(matches!(err, Error::Registry { .. }), "{who}: {err}");
            let err = shared.inspect(&reference, &options.credentials).await.unwrap_err();
            assert!(matches!(err, Error::Registry { .. }), "{who} inspecting: {err}");
        }
        shared.pull(&reference, &with("s3cret")).await.expect("the right password still works");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_layer_blob_is_refused_and_leaves_nothing() {
    let registry = Registry::start();
    let image = busybox_image(Format::Oci);
    registry.push("bad/blob:1", &image).await;
    // The registry now serves other bytes under the layer's digest (same length).
    let file = registry.blob_file(&image.layers[0].digest);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    for puller in PULLERS {
        let (_dir, store) = store();
        let err = puller(&registry, &store)
            .pull(&registry.reference("bad/blob:1"), &PullOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::DigestMismatch { ref expected, .. } if expected.as_str() == image.layers[0].digest),
            "{err}"
        );
        let left: Vec<String> = leftovers(&store)
            .into_iter()
            .filter(|p| !p.contains(&image.layers[1].diff_id[7..]) && !p.contains(&image.layers[1].digest[7..]))
            .collect();
        // The good layer may stay (verified, or as a resumable partial download); the bad one may not.
        assert_eq!(left, Vec::<String>::new(), "the bad layer left nothing");
        assert!(store.image(&registry.reference("bad/blob:1")).is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_lying_about_a_diff_id_is_refused_and_leaves_nothing() {
    let registry = Registry::start();
    let mut image = TestImage::new(Format::Oci, vec![TestLayer::gzip(busybox_layer(), Format::Oci)]);
    image.diff_ids = Some(vec![sha(b"not this layer")]);
    registry.push("bad/diffid:1", &image).await;
    for puller in PULLERS {
        let (_dir, store) = store();
        let err = puller(&registry, &store)
            .pull(&registry.reference("bad/diffid:1"), &PullOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::DigestMismatch { ref actual, .. } if actual.as_str() == image.layers[0].diff_id),
            "{err}"
        );
        assert_eq!(leftovers(&store), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_layer_is_refused_and_writes_nothing_outside() {
    let registry = Registry::start();
    for (n, puller) in PULLERS.into_iter().enumerate() {
        let (dir, store) = store();
        let escape = dir.path().join("escaped");
        let depth = "../".repeat(12);
        let name = format!("{depth}{}", escape.display().to_string().trim_start_matches('/'));
        let hostile = TarBuilder::default().file("ok", b"fine", 0o644).raw_file(&name, b"pwned").build();
        let reference = registry.reference(&format!("bad/tar:{n}"));
        registry
            .push(&format!("bad/tar:{n}"), &TestImage::new(Format::Oci, vec![TestLayer::gzip(hostile, Format::Oci)]))
            .await;

        let err = puller(&registry, &store).pull(&reference, &PullOptions::default()).await.unwrap_err();
        assert!(matches!(err, Error::HostileLayer { .. }), "{err}");
        assert!(!escape.exists());
        assert_eq!(leftovers(&store), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_download_a_shared_layer_once() {
    let registry = Registry::start();
    let base = TestLayer::gzip(busybox_layer(), Format::Oci);
    let one = TestImage::new(Format::Oci, vec![base.clone(), TestLayer::zstd(whiteout_layer())]);
    let two = TestImage::new(
        Format::Oci,
        vec![base.clone(), TestLayer::gzip(TarBuilder::default().file("two", b"2", 0o644).build(), Format::Oci)],
    );
    registry.push("shared/one:1", &one).await;
    registry.push("shared/two:1", &two).await;
    let (_dir, store) = store();
    let p = puller(&registry, &store);
    let (r1, r2, r3, r4) = (
        registry.reference("shared/one:1"),
        registry.reference("shared/two:1"),
        registry.reference("shared/one:1"),
        registry.reference("shared/two:1"),
    );
    let o = PullOptions::default();

    let results = tokio::join!(p.pull(&r1, &o), p.pull(&r2, &o), p.pull(&r3, &o), p.pull(&r4, &o));
    for r in [results.0, results.1, results.2, results.3] {
        r.unwrap();
    }
    let m = metrics(&store);
    assert_eq!((m.layer_downloads, m.layers, m.pulls), (3, 3, 4));
    assert_eq!(m.layer_cache_hits, 8 - 3);
    assert_eq!(registry.blob_gets(&base.digest), 1, "the shared layer crossed the network once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_resumes_where_it_stopped() {
    let registry = Registry::start();
    let image = TestImage::new(Format::Oci, vec![TestLayer::gzip(busybox_layer(), Format::Oci)]);
    registry.push("resume/me:1", &image).await;
    for puller in PULLERS {
        let (_dir, store) = store();
        // What a previous, interrupted attempt left behind.
        let blob = &image.layers[0].blob;
        let half = blob.len() / 2;
        let partial = store.root().join("tmp/downloads").join(&image.layers[0].digest[7..]);
        std::fs::write(&partial, &blob[..half]).unwrap();
        let ranged_before = registry.log().matches(" 206 ").count();

        let record = puller(&registry, &store).pull(&registry.reference("resume/me:1"), &PullOptions::default()).await;
        let base = store.layer_dir(&record.unwrap().layers[0].diff_id);
        assert_eq!(std::fs::read(base.join("bin/busybox")).unwrap(), std::fs::read(BUSYBOX).unwrap());
        assert_eq!(metrics(&store).bytes_downloaded, (blob.len() - half) as u64, "only the rest was fetched");
        assert_eq!(registry.log().matches(" 206 ").count(), ranged_before + 1, "a ranged request was made");
        assert!(!partial.exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_layer_resumes_within_the_pull() {
    // Gathered in memory (the default for a small layer), then unpacked while it streams.
    for whole_layer_max in [RegistryConfig::default().whole_layer_max, 0] {
        let registry = Registry::start();
        let image = TestImage::new(Format::Oci, vec![TestLayer::gzip(busybox_layer(), Format::Oci)]);
        registry.push("flaky/net:1", &image).await;
        let blob = &image.layers[0].blob;
        let digest = &image.layers[0].digest;
        let proxy = common::cutting_proxy::CuttingProxy::start(&registry.host, digest, blob.len() / 2).await;
        let (_dir, store) = store();
        let config =
            RegistryConfig { insecure_registries: vec![proxy.host.clone()], whole_layer_max, ..Default::default() };

        let record = Puller::new(store.clone(), config)
            .pull(&format!("{}/flaky/net:1", proxy.host), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(proxy.cuts(), 1, "the first download was cut");
        assert_eq!(registry.blob_gets(digest), 2, "one download cut, one for the rest");
        assert_eq!(metrics(&store).bytes_downloaded, blob.len() as u64, "no byte was fetched twice");
        let base = store.layer_dir(&record.layers[0].diff_id);
        assert_eq!(std::fs::read(base.join("bin/busybox")).unwrap(), std::fs::read(BUSYBOX).unwrap());
        let scratch = store.root().join("tmp").display().to_string();
        let tmp: Vec<String> = leftovers(&store).into_iter().filter(|p| p.starts_with(&scratch)).collect();
        assert_eq!(tmp, Vec::<String>::new(), "no download file or staging directory is left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_ignores_ranges_sends_whole_blobs_which_are_still_verified() {
    let registry = Registry::start();
    let image = TestImage::new(Format::Oci, vec![TestLayer::gzip(busybox_layer(), Format::Oci)]);
    registry.push("no/ranges:1", &image).await;
    let proxy = common::cutting_proxy::CuttingProxy::ignoring_ranges(&registry.host).await;
    let reference = format!("{}/no/ranges:1", proxy.host);
    let blob = &image.layers[0].blob;
    let digest = &image.layers[0].digest;
    let config = |whole_layer_max| RegistryConfig {
        insecure_registries: vec![proxy.host.clone()],
        whole_layer_max,
        ..Default::default()
    };
    for whole_layer_max in [RegistryConfig::default().whole_layer_max, 0] {
        let (_dir, store) = store();
        let puller = Puller::new(store.clone(), config(whole_layer_max));
        // Half a download left by an earlier pull: a whole answer starts the blob over.
        let partial = store.root().join("tmp/downloads").join(&digest[7..]);
        std::fs::write(&partial, &blob[..blob.len() / 2]).unwrap();
        let record = puller.pull(&reference, &PullOptions::default()).await.unwrap();
        let base = store.layer_dir(&record.layers[0].diff_id);
        assert_eq!(std::fs::read(base.join("bin/busybox")).unwrap(), std::fs::read(BUSYBOX).unwrap());
        assert_eq!(metrics(&store).bytes_downloaded, blob.len() as u64, "the whole blob came again");
        assert!(!partial.exists());
    }
    assert!(registry.blob_gets(digest) >= 2);
    assert!(!registry.log().contains("\" 206 "), "the registry never saw a range");

    // A whole answer with other bytes is refused as a ranged one is.
    let file = registry.blob_file(digest);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    for whole_layer_max in [RegistryConfig::default().whole_layer_max, 0] {
        let (_dir, store) = store();
        let err = Puller::new(store.clone(), config(whole_layer_max))
            .pull(&reference, &PullOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { ref expected, .. } if expected.as_str() == digest), "{err}");
        assert_eq!(leftovers(&store), Vec::<String>::new(), "the bad layer left nothing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_file_holding_the_whole_blob_needs_no_request() {
    let registry = Registry::start();
    let image = TestImage::new(Format::Oci, vec![TestLayer::gzip(busybox_layer(), Format::Oci)]);
    registry.push("whole/left:1", &image).await;
    let layer = &image.layers[0];
    for puller in PULLERS {
        let (_dir, store) = store();
        // A pull that crashed after the last byte arrived, before it unpacked.
        let left = store.root().join("tmp/downloads").join(&layer.digest[7..]);
        std::fs::write(&left, &layer.blob).unwrap();
        let gets = registry.blob_gets(&layer.digest);
        let record = puller(&registry, &store).pull(&registry.reference("whole/left:1"), &PullOptions::default()).await;
        let base = store.layer_dir(&record.unwrap().layers[0].diff_id);
        assert_eq!(std::fs::read(base.join("bin/busybox")).unwrap(), std::fs::read(BUSYBOX).unwrap());
        assert_eq!(registry.blob_gets(&layer.digest), gets, "nothing was asked for");
        assert_eq!(metrics(&store).bytes_downloaded, 0);
        assert!(!left.exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_bytes_that_a_whole_answer_contradicts_are_not_unpacked() {
    let registry = Registry::start();
    let image = TestImage::new(Format::Oci, vec![TestLayer::gzip(busybox_layer(), Format::Oci)]);
    registry.push("stale/left:1", &image).await;
    let proxy = common::cutting_proxy::CuttingProxy::ignoring_ranges(&registry.host).await;
    let reference = format!("{}/stale/left:1", proxy.host);
    let layer = &image.layers[0];
    let stale: Vec<u8> = layer.blob[..layer.blob.len() / 2].iter().map(|b| b ^ 0x5a).collect();
    for whole_layer_max in [RegistryConfig::default().whole_layer_max, 0] {
        let (_dir, store) = store();
        let config =
            RegistryConfig { insecure_registries: vec![proxy.host.clone()], whole_layer_max, ..Default::default() };
        let puller = Puller::new(store.clone(), config);
        let left = store.root().join("tmp/downloads").join(&layer.digest[7..]);
        std::fs::write(&left, &stale).unwrap();
        let first = puller.pull(&reference, &PullOptions::default()).await;
        if whole_layer_max == 0 {
            // Streamed: the unpacker had the saved bytes already, so the pull stops, and drops them.
            let err = first.unwrap_err();
            assert!(err.to_string().contains("the part an earlier pull left"), "{err}");
            assert!(!left.exists(), "the stale bytes are gone");
            assert_eq!(leftovers(&store), Vec::<String>::new());
        } else {
            // Gathered: the whole answer replaces them.
            first.unwrap();
        }
        let record = puller.pull(&reference, &PullOptions::default()).await.unwrap();
        let base = store.layer_dir(&record.layers[0].diff_id);
        assert_eq!(std::fs::read(base.join("bin/busybox")).unwrap(), std::fs::read(BUSYBOX).unwrap());
    }
}

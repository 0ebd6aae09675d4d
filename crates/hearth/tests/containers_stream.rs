//! Tar streams into and out of real containers (`Runtime::stream_in`, `stream_out`):
//! contents, modes and owners arrive; hostile tars write nothing outside the destination.
//! Needs root and Debian's `busybox-static`.

#[path = "common/container_fixtures.rs"]
mod fixtures;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use fixtures::{TestRuntime, rootfs};
use hearth_containers::{BindMount, ContainerId, ContainerSpec, Error, ExitStatus, ProcessSpec, Status, User};
use tar::{Builder, EntryType, Header};
use tokio::io::AsyncReadExt;

const VCAP: User = User { uid: 2000, gid: 2000 };

/// A container running `sleep` with the host directory `data` (owned by vcap's host ids)
/// bound read-write at `/data`.
async fn with_data_dir(rt: &TestRuntime, name: &str) -> (ContainerId, std::path::PathBuf) {
    let data = rt.root.join("host-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&data, Some(102_000), Some(102_000)).unwrap();
    let mut spec = ContainerSpec::new(rootfs(), vec!["/bin/sleep".into(), "600".into()]);
    spec.bind_mounts.push(BindMount { source: data.clone(), destination: "/data".into(), read_only: false });
    let id = ContainerId::new(name).unwrap();
    rt.runtime.create(&id, &spec).await.unwrap();
    rt.runtime.start(&id).await.unwrap();
    (id, data)
}

async fn sh_in(rt: &TestRuntime, id: &ContainerId, script: &str) -> String {
    let spec = ProcessSpec::new(vec!["/bin/sh".into(), "-c".into(), script.into()]);
    let mut p = rt.runtime.exec(id, spec).await.unwrap();
    let (out, err) = (p.take_stdout().unwrap(), p.take_stderr().unwrap());
    let (out, err) = tokio::join!(out.read_all(), err.read_all());
    let exit = p.wait().await.unwrap();
    let err = String::from_utf8(err.unwrap()).unwrap();
    assert_eq!(exit, ExitStatus::Code(0), "{script}: {err}");
    String::from_utf8(out.unwrap()).unwrap()
}

/// An app: directories, an executable, a private file, a symlink and a hard link.
fn app_tar() -> Vec<u8> {
    let mut b = Builder::new(Vec::new());
    let mut add = |name: &str, kind: EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        match link {
            Some(target) => b.append_link(&mut h, name, target).unwrap(),
            None => b.append_data(&mut h, name, data).unwrap(),
        }
    };
    add("bin/", EntryType::Directory, 0o750, b"", None);
    add("bin/run.sh", EntryType::Regular, 0o755, b"#!/bin/sh\necho running\n", None);
    add("config/secret.txt", EntryType::Regular, 0o640, b"s3cret\n", None); // its dir is implied
    add("current", EntryType::Symlink, 0o777, b"", Some("bin/run.sh"));
    add("run-again.sh", EntryType::Link, 0o755, b"", Some("bin/run.sh"));
    b.into_inner().unwrap()
}

#[tokio::test]
async fn stream_in_unpacks_with_modes_and_owner_and_stream_out_packs_it_again() {
    let rt = TestRuntime::new("stream");
    let (id, data) = with_data_dir(&rt, "stream").await;
    rt.runtime.stream_in(&id, "/data/app", &app_tar()[..], VCAP).await.unwrap();

    let listing = sh_in(&rt, &id, "cd /data/app && stat -c '%A %u:%g %n' $(find . | sort); cat current").await;
    let expected = "drwxr-xr-x 2000:2000 .\n\
                    drwxr-x--- 2000:2000 ./bin\n\
                    -rwxr-xr-x 2000:2000 ./bin/run.sh\n\
                    drwxr-xr-x 2000:2000 ./config\n\
                    -rw-r----- 2000:2000 ./config/secret.txt\n\
                    lrwxrwxrwx 2000:2000 ./current\n\
                    -rwxr-xr-x 2000:2000 ./run-again.sh\n\
                    #!/bin/sh\necho running\n";
    assert_eq!(listing, expected);
    let ls = sh_in(&rt, &id, "ls -ln /data/app/bin").await;
    assert!(ls.contains(" 2000     2000 ") && ls.contains("run.sh"), "{ls}");
    // On the host the owner is the mapped uid.
    let host = std::fs::metadata(data.join("app/bin/run.sh")).unwrap();
    assert_eq!((host.uid(), host.gid()), (102_000, 102_000));
    assert_eq!(std::fs::metadata(data.join("app/run-again.sh")).unwrap().ino(), host.ino(), "a real hard link");

    // Into the container's own /tmp (a tmpfs only its mount namespace has).
    let mut b = Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    b.append_data(&mut h, "note", &b"hello\n"[..]).unwrap();
    rt.runtime.stream_in(&id, "/tmp/bits", &b.into_inner().unwrap()[..], VCAP).await.unwrap();
    assert_eq!(sh_in(&rt, &id, "cat /tmp/bits/note; stat -c %u /tmp/bits").await, "hello\n2000\n");
    assert!(!Path::new("/tmp/bits").exists() && !rootfs().join("tmp/bits").exists());

    let mut tar = rt.runtime.stream_out(&id, "/data/app").await.unwrap();
    let mut bytes = Vec::new();
    tar.read_to_end(&mut bytes).await.unwrap();
    let mut entries = Vec::new();
    for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let mut content = String::new();
        std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
        let link = h.link_name().unwrap().map(|l| l.display().to_string()).unwrap_or_default();
        let name = entry.path().unwrap().display().to_string();
        entries.push(format!(
            "{name} {:o} {}:{} {content:?}{link}",
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap()
        ));
    }
    assert_eq!(
        entries,
        [
            "app 755 2000:2000 \"\"",
            "app/bin 750 2000:2000 \"\"",
            "app/bin/run.sh 755 2000:2000 \"#!/bin/sh\\necho running\\n\"",
            "app/config 755 2000:2000 \"\"",
            "app/config/secret.txt 640 2000:2000 \"s3cret\\n\"",
            "app/current 777 2000:2000 \"\"bin/run.sh",
            "app/run-again.sh 755 2000:2000 \"#!/bin/sh\\necho running\\n\"",
        ]
    );
    let mut single = rt.runtime.stream_out(&id, "/tmp/bits/note").await.unwrap();
    let mut bytes = Vec::new();
    single.read_to_end(&mut bytes).await.unwrap();
    let names: Vec<String> = tar::Archive::new(&bytes[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["note"]);

    let err = rt.runtime.stream_out(&id, "/data/missing").await.err().unwrap();
    assert!(
        matches!(&err, Error::Helper { op: "stream out", message, .. } if message.contains("No such file")),
        "{err}"
    );
    assert!(matches!(rt.runtime.stream_out(&id, "relative").await, Err(Error::Helper { .. })));
    rt.runtime.destroy(&id).await.unwrap();
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

/// One tar entry written byte by byte, so names the tar crate would refuse get in.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: EntryType, link: &str, data: &[u8]) {
    let mut h = Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

/// Name, kind and link target of a hand-made entry.
type RawEntry<'a> = (&'a str, EntryType, &'a str);

fn hostile(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link) in entries {
        let data: &[u8] = if *kind == EntryType::Regular { b"pwned\n" } else { b"" };
        raw_entry(&mut out, name, *kind, link, data);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[tokio::test]
async fn hostile_tars_write_nothing_outside_the_destination() {
    let rt = TestRuntime::new("hostile");
    let (id, data) = with_data_dir(&rt, "hostile").await;
    std::fs::write(data.join("secret"), "host secret\n").unwrap();
    let host_file = rt.root.join("host-file");
    std::fs::write(&host_file, "untouched\n").unwrap();
    let host_link = host_file.to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<RawEntry>)> = vec![
        ("dot-dot", vec![("../escape", EntryType::Regular, "")]),
        ("dot-dot twice", vec![("../../escape", EntryType::Regular, "")]),
        ("absolute", vec![("/abs-escape", EntryType::Regular, "")]),
        ("through a symlink to /", vec![("up", EntryType::Symlink, "/"), ("up/data/via-link", EntryType::Regular, "")]),
        (
            "through a symlink to ..",
            vec![("back", EntryType::Symlink, ".."), ("back/via-dotdot", EntryType::Regular, "")],
        ),
        ("hard link to a host path", vec![("hl", EntryType::Link, &host_link)]),
        ("hard link out by ..", vec![("hl2", EntryType::Link, "../secret")]),
        ("device", vec![("dev", EntryType::Char, "")]),
    ];
    for (what, entries) in &cases {
        let err = rt.runtime.stream_in(&id, "/data/app", &hostile(entries)[..], VCAP).await.unwrap_err();
        assert!(matches!(err, Error::Helper { op: "stream in", .. }), "{what}: {err}");
    }
    // Every place those entries aimed at, on the host and in the container's rootfs.
    for path in [
        data.join("escape"),
        data.join("abs-escape"),
        data.join("via-link"),
        data.join("via-dotdot"),
        data.join("app/hl"),
        data.join("app/hl2"),
        data.join("app/dev"),
        rt.root.join("escape"),
        rootfs().join("escape"),
        rootfs().join("abs-escape"),
        rootfs().join("data/via-link"),
        Path::new("/escape").to_path_buf(),
        Path::new("/abs-escape").to_path_buf(),
        Path::new("/data/via-link").to_path_buf(),
    ] {
        assert!(!path.exists(), "{} was written", path.display());
    }
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "untouched\n");
    assert_eq!(std::fs::metadata(&host_file).unwrap().nlink(), 1, "no link to the host file");
    assert_eq!(std::fs::read_to_string(data.join("secret")).unwrap(), "host secret\n");
    // What is left inside the destination is only the harmless symlinks themselves.
    let mut left: Vec<String> = std::fs::read_dir(data.join("app"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    left.sort();
    assert_eq!(left, ["back", "up"]);

    // Bad destinations and stopped containers are refused too.
    for dest in ["relative", "/data/../etc"] {
        assert!(rt.runtime.stream_in(&id, dest, &app_tar()[..], VCAP).await.is_err(), "{dest}");
    }
    // The owner needs write permission, as a process of the container would.
    std::fs::create_dir(data.join("root-only")).unwrap();
    let err = rt.runtime.stream_in(&id, "/data/root-only/app", &app_tar()[..], VCAP).await.unwrap_err();
    assert!(err.to_string().contains("Permission denied"), "{err}");
    assert!(!data.join("root-only/app").exists());
    let nobody = User { uid: 70_000, gid: 70_000 };
    assert!(rt.runtime.stream_in(&id, "/data/x", &app_tar()[..], nobody).await.is_err());
    assert!(!data.join("x").exists());
    rt.runtime.kill(&id, 9).await.unwrap();
    rt.runtime.wait(&id).await.unwrap();
    let err = rt.runtime.stream_in(&id, "/data/app", &app_tar()[..], VCAP).await.unwrap_err();
    assert!(matches!(err, Error::IllegalTransition { status: Status::Stopped, .. }), "{err}");
    rt.runtime.destroy(&id).await.unwrap();
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

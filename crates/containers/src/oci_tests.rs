use std::collections::HashSet;

use oci_spec::runtime::{LinuxNamespaceType, LinuxSeccompAction, Spec};

use super::*;
use crate::spec::{BindMount, Limits, Overlay, User};

fn placement() -> Placement {
    Placement { id_map: IdMap::default(), cgroup_parent: "hearth".into() }
}

fn spec() -> ContainerSpec {
    let mut spec = ContainerSpec::new("/var/lib/hearth/rootfs/abc", vec!["/bin/sh".into(), "-c".into(), "true".into()]);
    spec.env.push("GREETING=hi".into());
    spec.cwd = "/home/vcap".into();
    spec.hostname = "web-0".into();
    spec.bind_mounts.push(BindMount { source: "/srv/data".into(), destination: "/data".into(), read_only: true });
    spec.limits = Limits { memory_bytes: Some(64 << 20), cpu_shares: Some(512), pids: Some(100) };
    spec
}

fn build(spec: &ContainerSpec) -> Spec {
    runtime_spec(&ContainerId::new("web-0").unwrap(), spec, &placement()).unwrap()
}

#[test]
fn process_root_and_hostname_come_from_the_spec() {
    let oci = build(&spec());
    let process = oci.process().as_ref().unwrap();
    assert_eq!(process.args().as_ref().unwrap(), &["/bin/sh", "-c", "true"]);
    assert!(process.env().as_ref().unwrap().contains(&"GREETING=hi".to_string()));
    assert_eq!(process.cwd(), Path::new("/home/vcap"));
    assert_eq!((process.user().uid(), process.user().gid()), (2000, 2000));
    assert_eq!(process.user().umask(), Some(0o022));
    assert_eq!(process.terminal(), Some(false));
    let root = oci.root().as_ref().unwrap();
    assert_eq!(root.path(), Path::new("/var/lib/hearth/rootfs/abc"));
    assert_eq!(root.readonly(), Some(true));
    assert_eq!(oci.hostname().as_deref(), Some("web-0"));
}

#[test]
fn limits_set_memory_with_swap_off_cpu_shares_and_pids() {
    let oci = build(&spec());
    let resources = oci.linux().as_ref().unwrap().resources().as_ref().unwrap();
    let memory = resources.memory().as_ref().unwrap();
    assert_eq!(memory.limit(), Some(64 << 20));
    assert_eq!(memory.swap(), Some(64 << 20), "memory+swap equal to memory: no swap");
    assert_eq!(resources.cpu().as_ref().unwrap().shares(), Some(512));
    assert_eq!(resources.pids().as_ref().unwrap().limit(), 100);
    let devices = resources.devices().as_ref().unwrap();
    assert!(!devices[0].allow() && devices[0].access().as_deref() == Some("rwm"), "devices: deny all first");

    let unlimited = build(&ContainerSpec { limits: Limits::default(), ..spec() });
    let resources = unlimited.linux().as_ref().unwrap().resources().as_ref().unwrap();
    assert!(resources.memory().is_none() && resources.cpu().is_none() && resources.pids().is_none());
}

#[test]
fn every_namespace_is_new_and_ids_map_to_the_subordinate_range() {
    let oci = build(&spec());
    let linux = oci.linux().as_ref().unwrap();
    let types: HashSet<LinuxNamespaceType> = linux.namespaces().as_ref().unwrap().iter().map(|n| n.typ()).collect();
    for typ in [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
    ] {
        assert!(types.contains(&typ), "{typ:?} namespace missing");
    }
    assert!(linux.namespaces().as_ref().unwrap().iter().all(|n| n.path().is_none()), "no namespace is joined");
    for maps in [linux.uid_mappings(), linux.gid_mappings()] {
        let maps = maps.as_ref().unwrap();
        assert_eq!(maps.len(), 1);
        assert_eq!((maps[0].container_id(), maps[0].host_id(), maps[0].size()), (0, 100_000, 65_536));
    }
    assert_eq!(linux.cgroups_path().as_deref(), Some(Path::new("/hearth/web-0")));
}

#[test]
fn capabilities_are_gardens_fourteen_and_none_effective_for_non_root() {
    let all: HashSet<Capability> = CAPABILITIES.into_iter().collect();
    assert_eq!(all.len(), 14);
    let oci = build(&spec());
    let caps = oci.process().as_ref().unwrap().capabilities().as_ref().unwrap();
    assert_eq!(caps.bounding().as_ref().unwrap(), &all);
    for set in [caps.effective(), caps.permitted(), caps.inheritable(), caps.ambient()] {
        assert!(set.as_ref().unwrap().is_empty());
    }
    assert!(!all.contains(&Capability::SysAdmin) && !all.contains(&Capability::SysModule));

    let root = build(&ContainerSpec { user: User { uid: 0, gid: 0 }, ..spec() });
    let caps = root.process().as_ref().unwrap().capabilities().as_ref().unwrap();
    assert_eq!(caps.effective().as_ref().unwrap(), &all);
    assert_eq!(caps.permitted().as_ref().unwrap(), &all);
    assert!(caps.ambient().as_ref().unwrap().is_empty());
}

#[test]
fn no_new_privileges_seccomp_and_masked_paths_are_always_on() {
    let oci = build(&spec());
    assert_eq!(oci.process().as_ref().unwrap().no_new_privileges(), Some(true));
    let linux = oci.linux().as_ref().unwrap();
    assert_eq!(linux.seccomp().as_ref().unwrap().default_action(), LinuxSeccompAction::ScmpActErrno);
    let masked = linux.masked_paths().as_ref().unwrap();
    for path in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware"] {
        assert!(masked.iter().any(|m| m == path), "{path} must be masked");
    }
    assert!(linux.readonly_paths().as_ref().unwrap().iter().any(|p| p == "/proc/sys"));
}

#[test]
fn mounts_give_proc_dev_sys_tmp_and_the_bind_mounts() {
    let oci = build(&spec());
    let mounts = oci.mounts().as_ref().unwrap();
    let find = |dst: &str| mounts.iter().find(|m| m.destination() == Path::new(dst)).unwrap();
    assert_eq!(find("/proc").typ().as_deref(), Some("proc"));
    assert!(find("/sys").options().as_ref().unwrap().contains(&"ro".to_string()));
    assert_eq!(find("/tmp").typ().as_deref(), Some("tmpfs"));
    let data = find("/data");
    assert_eq!(data.typ().as_deref(), Some("bind"));
    assert_eq!(data.source().as_deref(), Some(Path::new("/srv/data")));
    assert!(data.options().as_ref().unwrap().contains(&"ro".to_string()));
}

#[test]
fn nonsense_is_refused() {
    let id = ContainerId::new("c").unwrap();
    type Change = Box<dyn Fn(&mut ContainerSpec)>;
    let cases: Vec<(&str, Change)> = vec![
        ("no args", Box::new(|s| s.args.clear())),
        ("relative rootfs", Box::new(|s| s.rootfs = "rootfs".into())),
        ("relative cwd", Box::new(|s| s.cwd = "home".into())),
        ("cwd with ..", Box::new(|s| s.cwd = "/home/../etc".into())),
        ("env without =", Box::new(|s| s.env.push("JUSTNAME".into()))),
        ("uid outside the map", Box::new(|s| s.user.uid = 65_536)),
        ("empty hostname", Box::new(|s| s.hostname.clear())),
        ("bind onto /", Box::new(|s| s.bind_mounts[0].destination = "/".into())),
        ("bind with ..", Box::new(|s| s.bind_mounts[0].destination = "/data/../etc".into())),
        ("tiny memory", Box::new(|s| s.limits.memory_bytes = Some(1000))),
        ("cpu shares", Box::new(|s| s.limits.cpu_shares = Some(1))),
        ("pids", Box::new(|s| s.limits.pids = Some(0))),
    ];
    for (what, change) in cases {
        let mut s = spec();
        change(&mut s);
        assert!(matches!(runtime_spec(&id, &s, &placement()), Err(Error::InvalidSpec(_))), "{what} must be refused");
    }
}

#[test]
fn the_spec_serialises_as_oci_config_json() {
    let json = serde_json::to_value(build(&spec())).unwrap();
    assert_eq!(json["linux"]["cgroupsPath"], "/hearth/web-0");
    assert_eq!(json["process"]["noNewPrivileges"], true);
    assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(json["linux"]["uidMappings"][0]["hostID"], 100_000);
}

fn rootless_placement() -> Placement {
    let id_map =
        IdMap { host_uid: 1_000_000, host_gid: 1_000_000, size: 65_536, owner: Some(Owner { uid: 999, gid: 995 }) };
    Placement { id_map, cgroup_parent: "hearth".into() }
}

#[test]
fn a_rootless_spec_maps_root_to_the_owner_and_has_no_device_rules() {
    let id = ContainerId::new("web-0").unwrap();
    let oci = runtime_spec(&id, &spec(), &rootless_placement()).unwrap();
    let linux = oci.linux().as_ref().unwrap();
    let triples = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.as_ref().unwrap().iter().map(|m| (m.container_id(), m.host_id(), m.size())).collect::<Vec<_>>()
    };
    assert_eq!(triples(linux.uid_mappings()), [(0, 999, 1), (1, 1_000_000, 65_536)]);
    assert_eq!(triples(linux.gid_mappings()), [(0, 995, 1), (1, 1_000_000, 65_536)]);
    let resources = linux.resources().as_ref().unwrap();
    assert!(resources.devices().is_none(), "only CAP_SYS_ADMIN may write device rules");
    assert_eq!(resources.memory().as_ref().unwrap().limit(), Some(64 << 20), "limits stay for a delegated cgroup");
    // 65536 container ids come from the range, plus root.
    let top = ContainerSpec { user: User { uid: 65_536, gid: 65_536 }, ..spec() };
    assert!(runtime_spec(&id, &top, &rootless_placement()).is_ok());
    assert!(runtime_spec(&id, &top, &placement()).is_err());
}

#[test]
fn an_overlay_is_the_first_mount_on_the_root_with_userxattr_when_rootless() {
    let id = ContainerId::new("web-0").unwrap();
    let overlay = Overlay {
        lower: vec!["/layers/b".into(), "/layers/a".into()],
        writable: Some(("/rootfs/upper".into(), "/rootfs/work".into())),
    };
    let spec = ContainerSpec { overlay: Some(overlay), ..spec() };
    for (placement, userxattr) in [(rootless_placement(), true), (placement(), false)] {
        let oci = runtime_spec(&id, &spec, &placement).unwrap();
        let first = &oci.mounts().as_ref().unwrap()[0];
        assert_eq!((first.destination().as_path(), first.typ().as_deref()), (Path::new("/"), Some("overlay")));
        let options = first.options().as_ref().unwrap();
        let lower = match overlay_lowerdir_append() {
            true => vec!["lowerdir+=/layers/b", "lowerdir+=/layers/a"],
            false => vec!["lowerdir=/layers/b:/layers/a"],
        };
        let n = lower.len();
        assert_eq!(options[..n], lower);
        assert_eq!(&options[n..n + 2], ["upperdir=/rootfs/upper", "workdir=/rootfs/work"]);
        assert_eq!(options.iter().any(|o| o == "userxattr"), userxattr);
    }
    for bad in ["relative/layer", "/layers/a:b", "/layers/x,upperdir=/etc", "/layers/../etc"] {
        let overlay = Overlay { lower: vec![bad.into()], writable: None };
        let err = runtime_spec(&id, &ContainerSpec { overlay: Some(overlay), ..spec.clone() }, &placement());
        assert!(matches!(err, Err(Error::InvalidSpec(_))), "{bad}");
    }
    let empty = Overlay { lower: Vec::new(), writable: None };
    assert!(runtime_spec(&id, &ContainerSpec { overlay: Some(empty), ..spec.clone() }, &placement()).is_err());
}

#[test]
fn overlay_values_past_what_fsconfig_takes_are_refused_with_what_to_do() {
    let id = ContainerId::new("web-0").unwrap();
    assert_eq!(lowerdir_options(&["/b".into(), "/a".into()], true), ["lowerdir+=/b", "lowerdir+=/a"]);
    assert_eq!(lowerdir_options(&["/b".into(), "/a".into()], false), ["lowerdir=/b:/a"]);
    let long = format!("/{}", "d".repeat(FSCONFIG_MAX_VALUE));
    let overlay = Overlay { lower: vec![long.into()], writable: None };
    let err =
        runtime_spec(&id, &ContainerSpec { overlay: Some(overlay), ..spec() }, &rootless_placement()).unwrap_err();
    assert!(err.to_string().contains("--data-dir"), "{err}");
    // Ten layers of 100 bytes: one `lowerdir+` value each on Linux 6.8 and later.
    let lower: Vec<PathBuf> = (0..10).map(|n| format!("/{}{n}", "l".repeat(98)).into()).collect();
    let spec = ContainerSpec { overlay: Some(Overlay { lower, writable: None }), ..spec() };
    assert_eq!(runtime_spec(&id, &spec, &rootless_placement()).is_ok(), overlay_lowerdir_append());
}

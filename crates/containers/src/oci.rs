//! The OCI runtime spec (`config.json`) for a container: Hearth's `ContainerSpec` plus
//! Garden's security floor. Pure: builds a value, touches nothing.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use crate::error::Error;
use crate::id::ContainerId;
use crate::seccomp;
use crate::spec::ContainerSpec;

/// Garden's capability set: the bounding set of every container process, and the
/// effective set of processes that run as root inside the container. Non-root processes
/// have none effective.
pub const CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths replaced by an empty file or directory: they leak host information.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths mounted read-only: writing them would change the host kernel.
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Where container ids land on the host: container uid/gid `n` is host `host_* + n`, or, for
/// a rootless runtime (`owner` set), container id 0 is the owner itself and id `n >= 1` is
/// host `host_* + n - 1` (the owner's subordinate range from `/etc/subuid` and
/// `/etc/subgid`, written by `newuidmap`/`newgidmap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    pub host_uid: u32,
    pub host_gid: u32,
    /// How many host ids the range holds.
    pub size: u32,
    /// The ordinary user a rootless runtime runs as: container root maps to it, so files
    /// it owns (root filesystems, bundles) are root's inside the container.
    pub owner: Option<Owner>,
}

/// A host user and group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Default for IdMap {
    /// Host ids 100000-165535, the first range `useradd` hands out in `/etc/subuid`.
    fn default() -> Self {
        Self { host_uid: 100_000, host_gid: 100_000, size: 65_536, owner: None }
    }
}

impl IdMap {
    /// How many container ids are mapped (they are `0..container_ids()`).
    pub fn container_ids(&self) -> u32 {
        self.size.saturating_add(u32::from(self.owner.is_some()))
    }

    /// The user namespace's uid and gid mappings, in the OCI spec's terms.
    pub fn mappings(&self) -> Result<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>), oci_spec::OciSpecError> {
        let map = |container: u32, host: u32, size: u32| {
            LinuxIdMappingBuilder::default().container_id(container).host_id(host).size(size).build()
        };
        match self.owner {
            None => Ok((vec![map(0, self.host_uid, self.size)?], vec![map(0, self.host_gid, self.size)?])),
            Some(owner) => Ok((
                vec![map(0, owner.uid, 1)?, map(1, self.host_uid, self.size)?],
                vec![map(0, owner.gid, 1)?, map(1, self.host_gid, self.size)?],
            )),
        }
    }
}

/// How the runtime places containers on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub id_map: IdMap,
    /// The cgroup under which every container's cgroup is made, e.g. `hearth`.
    pub cgroup_parent: String,
}

impl Placement {
    /// The container's `cgroupsPath`: `/<parent>/<id>` (the same relative path in every
    /// v1 hierarchy, or under the v2 root).
    pub fn cgroup_path(&self, id: &ContainerId) -> PathBuf {
        PathBuf::from(format!("/{}/{}", self.cgroup_parent, id))
    }
}

/// Builds the runtime spec, refusing a `ContainerSpec` that would not make a sane container.
pub fn runtime_spec(id: &ContainerId, spec: &ContainerSpec, placement: &Placement) -> Result<Spec, Error> {
    validate(spec, &placement.id_map)?;
    let invalid = |e: oci_spec::OciSpecError| Error::InvalidSpec(e.to_string());

    let all: Capabilities = CAPABILITIES.into_iter().collect();
    let effective: Capabilities = if spec.user.uid == 0 { all.clone() } else { HashSet::new() };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(all)
        .effective(effective.clone())
        .permitted(effective)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(invalid)?;
    let user =
        UserBuilder::default().uid(spec.user.uid).gid(spec.user.gid).umask(spec.umask).build().map_err(invalid)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(spec.args.clone())
        .env(spec.env.clone())
        .cwd(&spec.cwd)
        .capabilities(capabilities)
        .no_new_privileges(true)
        .build()
        .map_err(invalid)?;

    let (uid_mappings, gid_mappings) = placement.id_map.mappings().map_err(invalid)?;
    let namespaces = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
    .collect::<Result<Vec<_>, _>>()
    .map_err(invalid)?;

    let linux = LinuxBuilder::default()
        .uid_mappings(uid_mappings)
        .gid_mappings(gid_mappings)
        .namespaces(namespaces)
        .cgroups_path(placement.cgroup_path(id))
        .resources(resources(spec, placement.id_map.owner.is_none()).map_err(invalid)?)
        .seccomp(seccomp::default_profile().map_err(invalid)?)
        .masked_paths(MASKED_PATHS.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        .readonly_paths(READONLY_PATHS.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        .rootfs_propagation("private")
        .build()
        .map_err(invalid)?;

    SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path(&spec.rootfs).readonly(spec.rootfs_readonly).build().map_err(invalid)?)
        .process(process)
        .hostname(spec.hostname.clone())
        .mounts(mounts(spec, placement.id_map.owner.is_some()).map_err(invalid)?)
        .linux(linux)
        .build()
        .map_err(invalid)
}

/// The cgroup limits. A rootless container gets no device rules: the kernel lets only
/// `CAP_SYS_ADMIN` write them, and a user namespace can neither make nor open device nodes
/// its mounts do not already show.
fn resources(
    spec: &ContainerSpec,
    device_rules: bool,
) -> Result<oci_spec::runtime::LinuxResources, oci_spec::OciSpecError> {
    let mut resources = LinuxResourcesBuilder::default();
    if device_rules {
        let deny_all_devices = LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build()?;
        resources = resources.devices(vec![deny_all_devices]);
    }
    if let Some(bytes) = spec.limits.memory_bytes {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        // swap = memory + swap in the OCI spec: equal to the limit means no swap at all.
        resources = resources.memory(LinuxMemoryBuilder::default().limit(bytes).swap(bytes).build()?);
    }
    if let Some(shares) = spec.limits.cpu_shares {
        resources = resources.cpu(LinuxCpuBuilder::default().shares(shares).build()?);
    }
    if let Some(pids) = spec.limits.pids {
        resources = resources.pids(LinuxPidsBuilder::default().limit(pids).build()?);
    }
    resources.build()
}

fn mounts(spec: &ContainerSpec, rootless: bool) -> Result<Vec<Mount>, oci_spec::OciSpecError> {
    let m = |dst: &str, typ: &str, src: &str, opts: &[&str]| {
        MountBuilder::default()
            .destination(dst)
            .typ(typ)
            .source(src)
            .options(opts.iter().map(|o| o.to_string()).collect::<Vec<_>>())
            .build()
    };
    let mut mounts = Vec::new();
    if let Some(overlay) = &spec.overlay {
        // First, on the root itself: every later mount lands inside the overlay.
        let mut options = lowerdir_options(&overlay.lower, overlay_lowerdir_append());
        if let Some((upper, work)) = &overlay.writable {
            options.push(format!("upperdir={}", upper.display()));
            options.push(format!("workdir={}", work.display()));
        }
        options.extend(["nodev", "nosuid"].map(String::from));
        // In a user namespace overlayfs keeps its metadata in user.* xattrs.
        if rootless {
            options.push("userxattr".into());
        }
        mounts
            .push(MountBuilder::default().destination("/").typ("overlay").source("overlay").options(options).build()?);
    }
    mounts.extend([
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        m("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"])?,
        m("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"])?,
        m("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"])?,
        m("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
        m("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])?,
        m("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777"])?,
    ]);
    for bind in &spec.bind_mounts {
        let access = if bind.read_only { "ro" } else { "rw" };
        mounts.push(
            MountBuilder::default()
                .destination(&bind.destination)
                .typ("bind")
                .source(&bind.source)
                .options(vec!["rbind".to_string(), access.to_string(), "nosuid".to_string(), "nodev".to_string()])
                .build()?,
        );
    }
    Ok(mounts)
}

/// libcontainer mounts with the new mount API, whose `fsconfig` takes option values of at
/// most 255 bytes: a store's layer paths joined into one `lowerdir` soon pass that. Since
/// Linux 6.8 overlayfs takes each layer as its own `lowerdir+` value (top first, as
/// `lowerdir` lists them).
const FSCONFIG_MAX_VALUE: usize = 255;

fn lowerdir_options(lower: &[PathBuf], append: bool) -> Vec<String> {
    match append {
        true => lower.iter().map(|p| format!("lowerdir+={}", p.display())).collect(),
        false => vec![format!("lowerdir={}", join_paths(lower))],
    }
}

/// Whether this kernel's overlayfs takes `lowerdir+` (Linux 6.8 and later).
fn overlay_lowerdir_append() -> bool {
    let Ok(uts) = nix::sys::utsname::uname() else { return false };
    let release = uts.release().to_string_lossy().into_owned();
    let mut numbers = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (major, minor) >= (6, 8)
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
}

fn validate(spec: &ContainerSpec, id_map: &IdMap) -> Result<(), Error> {
    let refuse = |why: String| Err(Error::InvalidSpec(why));
    if spec.args.is_empty() || spec.args[0].is_empty() {
        return refuse("args must name a program".into());
    }
    if !spec.rootfs.is_absolute() {
        return refuse(format!("rootfs {} must be an absolute path", spec.rootfs.display()));
    }
    if !is_clean_absolute(Path::new(&spec.cwd)) {
        return refuse(format!("cwd {:?} must be an absolute path without '..'", spec.cwd));
    }
    if let Some(bad) = spec.env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
        return refuse(format!("env entry {bad:?} must be NAME=value"));
    }
    let mapped = id_map.container_ids();
    if spec.user.uid >= mapped || spec.user.gid >= mapped {
        return refuse(format!("user {}:{} is outside the {mapped} mapped ids", spec.user.uid, spec.user.gid));
    }
    if spec.hostname.is_empty() || spec.hostname.len() > 63 {
        return refuse(format!("hostname {:?} must be 1 to 63 characters", spec.hostname));
    }
    for bind in &spec.bind_mounts {
        if !bind.source.is_absolute() || !is_clean_absolute(Path::new(&bind.destination)) || bind.destination == "/" {
            return refuse(format!(
                "bind mount {} -> {:?} needs absolute paths without '..', not onto /",
                bind.source.display(),
                bind.destination
            ));
        }
    }
    if let Some(overlay) = &spec.overlay {
        let mut paths: Vec<&PathBuf> = overlay.lower.iter().collect();
        if let Some((upper, work)) = &overlay.writable {
            paths.extend([upper, work]);
        }
        // ':' and ',' separate overlayfs options and layers; '=' would confuse the key.
        let bad = |p: &&PathBuf| {
            !p.is_absolute() || p.to_str().is_none_or(|s| s.contains([':', ',', '='])) || !is_clean_absolute(p)
        };
        if overlay.lower.is_empty() || paths.iter().any(bad) {
            return refuse(
                "overlay needs at least one lower layer and absolute, clean paths without ':' ',' '='".into(),
            );
        }
        let mut values: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        if !overlay_lowerdir_append() {
            values.push(join_paths(&overlay.lower));
        }
        if let Some(long) = values.iter().find(|v| v.len() > FSCONFIG_MAX_VALUE) {
            return refuse(format!(
                "overlay option value {long:?} is longer than the {FSCONFIG_MAX_VALUE} bytes the kernel's fsconfig \
                 takes (Linux before 6.8 takes every layer in one value): choose a shorter directory for the \
                 root filesystems (hearth server: --data-dir or --node-dir)"
            ));
        }
    }
    let limits = &spec.limits;
    if limits.memory_bytes.is_some_and(|m| m < 1 << 20) {
        return refuse("memory limit must be at least 1 MiB".into());
    }
    if limits.cpu_shares.is_some_and(|s| !(2..=262_144).contains(&s)) {
        return refuse("cpu shares must be within 2..=262144".into());
    }
    if limits.pids.is_some_and(|p| p < 1) {
        return refuse("pids limit must be at least 1".into());
    }
    Ok(())
}

fn is_clean_absolute(path: &Path) -> bool {
    path.is_absolute() && path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

#[cfg(test)]
#[path = "oci_tests.rs"]
mod tests;

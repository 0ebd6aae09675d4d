//! What runs on this machine: the container runtime and the image store, side by side.
//! `hearth server` opens one `Node` when it runs as root; the scheduler's cell and the
//! operators' endpoints (`ops`) both act through it.
//!
//! A node directory holds `containers/` (the runtime's root) and `images/` (the image
//! store). Containers mount root filesystems from inside their user namespace, so every
//! directory above the node directory must be searchable by others (o+x); the default for
//! root is `/var/lib/hearth`, because a data directory under `/root` is not.
//!
//! Run by an ordinary user (rootless mode, `hearth_containers::rootless`), the node maps
//! container root to that user and container ids 1.. to its subordinate range
//! (`/etc/subuid`, `/etc/subgid`); the image store unpacks and removes layers in that same
//! user namespace (so a layer's ownership is what its containers see) and mounts nothing on
//! the host: each container mounts its own overlay inside its namespaces. Containers get
//! `pasta` networking with host port forwards; disk limits are not enforced (no loop
//! devices); cgroup limits only where the cgroup parent is delegated to the user.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hearth_containers::network::{Destination, EgressRule, PortMapping, PortRange, Protocol};
use hearth_containers::{
    BindMount, ContainerId, ContainerInfo, ContainerSpec, IdMap, Limits, NetworkConfig, NetworkSpec, Overlay,
    Placement, Runtime, RuntimeConfig, User, cgroup, rootless,
};
use hearth_images::{
    Digest, DiskLimitBackend, ImageRecord, Puller, RegistryConfig, Stack, Store as ImageStore, StoreConfig,
    UserNamespace,
};
use tokio::sync::OnceCell;

/// The node's settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub dir: PathBuf,
    /// Registries (`host:port`) pulled from over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// The cgroup every container's cgroup is made under.
    pub cgroup_parent: String,
    /// The `hearth` binary the runtime runs as its helper (default: this executable).
    pub helper: Option<PathBuf>,
    /// The bridge, subnet, firewall table and host ports containers get. Two nodes on one
    /// machine need different ones.
    pub network: NetworkConfig,
}

impl NodeConfig {
    /// The node directory used when none is configured.
    pub fn default_dir() -> PathBuf {
        PathBuf::from("/var/lib/hearth")
    }
}

/// The container runtime and image store of this machine.
pub struct Node {
    dir: PathBuf,
    runtime: Runtime,
    puller: Puller,
    host_stack: OnceCell<Stack>,
}

/// What a container is made from when an operator asks for one.
#[derive(Debug, Clone)]
pub struct ContainerRequest {
    pub id: ContainerId,
    /// A pulled image reference; `None` runs on the host stack.
    pub image: Option<String>,
    /// The command; empty means the image's entrypoint + cmd.
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Container ports to map to free host ports (and give the container a network).
    pub ports: Vec<u16>,
    /// A network even without ports: egress by the default security groups (tasks; staging
    /// reaches a package index, as CF's staging security groups allow).
    pub network: bool,
    /// A limit on what the container may write to its root filesystem.
    pub disk_limit: Option<u64>,
    /// Memory limit in bytes (swap off).
    pub memory_bytes: Option<u64>,
    /// Most processes and threads.
    pub pids: Option<i64>,
    /// Stored layers laid over the stack or image (e.g. a droplet), bottom to top.
    pub layers: Vec<Digest>,
    /// The user to run as; `None`: the image's, or CF's `vcap` on a stack.
    pub user: Option<User>,
    /// The working directory; `None`: the image's, or `/`.
    pub cwd: Option<String>,
}

impl ContainerRequest {
    /// A request for `args` on the host stack with no network, limits or layers.
    pub fn new(id: ContainerId, args: Vec<String>) -> Self {
        ContainerRequest {
            id,
            image: None,
            args,
            env: Vec::new(),
            ports: Vec::new(),
            network: false,
            disk_limit: None,
            memory_bytes: None,
            pids: None,
            layers: Vec::new(),
            user: None,
            cwd: None,
        }
    }
}

impl Node {
    /// Opens (creating) the node directory. As root, containers map to host ids 100000+; as
    /// an ordinary user, to the user's subordinate range (rootless mode). What rootless mode
    /// lacks is refused at once, saying what to do.
    pub async fn open(config: &NodeConfig) -> anyhow::Result<Node> {
        let rootless = rootless::is_rootless();
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the node directory {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
        let helper = match &config.helper {
            Some(helper) => helper.clone(),
            None => std::env::current_exe().context("cannot find the hearth binary for the container helper")?,
        };
        let (id_map, store_config) = if rootless {
            rootless_setup(config, &helper)?
        } else {
            check_searchable(&dir)?;
            (IdMap::default(), StoreConfig::default())
        };
        let images_dir = dir.join("images");
        let images = tokio::task::spawn_blocking(move || ImageStore::open_with(images_dir, store_config))
            .await?
            .context("cannot open the image store")?;
        let registry =
            RegistryConfig { insecure_registries: config.insecure_registries.clone(), ..RegistryConfig::default() };
        let runtime = Runtime::new(RuntimeConfig {
            root: dir.join("containers"),
            helper,
            placement: Placement { id_map, cgroup_parent: config.cgroup_parent.clone() },
            network: config.network.clone(),
        });
        let node = Node { dir, runtime, puller: Puller::new(images, registry), host_stack: OnceCell::new() };
        let swept = node.sweep().await?;
        if !swept.is_empty() {
            tracing::info!(removed = ?swept, "cleaned up what an earlier run left half-made");
        }
        Ok(node)
    }

    /// Whether the node runs as an ordinary user: its instances are reached through their
    /// host port forwards on the host's loopback, not at their containers' addresses.
    pub fn is_rootless(&self) -> bool {
        self.runtime.is_rootless()
    }

    /// Removes what a crash left half-made: root filesystems with no container on them, and
    /// containers whose root filesystem is gone. Containers that run on are kept (they
    /// outlive restarts); who owns them is their owner's business (the cell reconciles its
    /// own). Answers what it removed.
    pub async fn sweep(&self) -> anyhow::Result<Vec<String>> {
        let images = self.images().clone();
        let rootfs_ids = tokio::task::spawn_blocking(move || images.rootfs_ids()).await??;
        let containers = self.runtime.list().await?;
        let mut removed = Vec::new();
        for id in &rootfs_ids {
            if !containers.iter().any(|c| c.as_str() == id) {
                let images = self.images().clone();
                let rootfs_id = id.clone();
                tokio::task::spawn_blocking(move || images.destroy_rootfs(&rootfs_id)).await??;
                removed.push(format!("root filesystem {id}"));
            }
        }
        for id in &containers {
            let Some(info) = self.runtime.lookup(id).await? else { continue };
            let ours = info.spec.rootfs.starts_with(self.images().root().join("rootfs"));
            if ours && !rootfs_ids.iter().any(|r| r == id.as_str()) {
                self.runtime.destroy(id).await?;
                removed.push(format!("container {id} (its root filesystem is gone)"));
            }
        }
        Ok(removed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn images(&self) -> &ImageStore {
        self.puller.store()
    }

    pub fn puller(&self) -> &Puller {
        &self.puller
    }

    /// The default stack (the host's OS directories, read-only), built on first use.
    pub async fn host_stack(&self) -> anyhow::Result<&Stack> {
        self.host_stack
            .get_or_try_init(|| async {
                let images = self.images().clone();
                tokio::task::spawn_blocking(move || images.host_stack(Path::new("/")))
                    .await?
                    .context("cannot build the host stack")
            })
            .await
    }

    /// Makes a root filesystem and a container on it and starts its main process. On
    /// failure nothing is left behind.
    pub async fn run(&self, request: &ContainerRequest) -> anyhow::Result<ContainerInfo> {
        let id = &request.id;
        self.create(request).await?;
        let started = async {
            self.runtime.start(id).await?;
            self.runtime.info(id).await
        }
        .await;
        match started {
            Ok(info) => Ok(info),
            Err(e) => {
                let _ = self.destroy(id).await;
                Err(e).with_context(|| format!("cannot start container {id}"))
            }
        }
    }

    /// Makes a root filesystem and a container on it whose main process waits to be
    /// started. On failure nothing is left behind.
    pub async fn create(&self, request: &ContainerRequest) -> anyhow::Result<ContainerInfo> {
        let (stack, runtime_config) = match &request.image {
            Some(reference) => {
                let image = self.image(reference)?;
                let stack = self.images().image_stack(&image.reference)?;
                (stack, Some(image.runtime))
            }
            None => (self.host_stack().await?.clone(), None),
        };
        let mut args = request.args.clone();
        let mut env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
        let mut cwd = "/".to_string();
        if let Some(config) = &runtime_config {
            if args.is_empty() {
                args = config.argv();
            }
            env = merge_env(&env, &config.env);
            if let Some(dir) = config.working_dir.as_deref().filter(|d| !d.is_empty()) {
                cwd = dir.to_string();
            }
        }
        if args.is_empty() {
            bail!("no command: give one, or pull an image that has an entrypoint or cmd");
        }
        env = merge_env(&env, &request.env);
        let id = request.id.clone();
        let images = self.images().clone();
        let mut rootfs_spec = stack.with_layers(&request.layers);
        rootfs_spec.disk_limit = request.disk_limit;
        let rootfs_id = id.to_string();
        let rootfs = tokio::task::spawn_blocking(move || images.create_rootfs(&rootfs_id, &rootfs_spec))
            .await?
            .with_context(|| format!("cannot make a root filesystem for {id}"))?;
        let mut spec = ContainerSpec::new(&rootfs.path, args);
        spec.rootfs_readonly = false;
        // Where the image's `/etc/passwd` is: the mounted root, or (rootless) the layers.
        let mut roots = vec![rootfs.path.clone()];
        if let Some(overlay) = &rootfs.overlay {
            roots = overlay.lower.clone();
            spec.overlay = Some(Overlay {
                lower: overlay.lower.clone(),
                writable: Some((rootfs.upper.clone(), overlay.work.clone())),
            });
            spec.bind_mounts = overlay
                .binds
                .iter()
                .map(|b| BindMount {
                    source: b.source.clone(),
                    destination: b.target.to_string_lossy().into_owned(),
                    read_only: true,
                })
                .collect();
        }
        // A stop's SIGTERM reaches the app (not a PID 1 that ignores it); orphans are reaped.
        spec.init = true;
        if request.network || !request.ports.is_empty() {
            let port_mappings =
                request.ports.iter().map(|&container_port| PortMapping { container_port, host_port: 0 }).collect();
            spec.network = Some(NetworkSpec { port_mappings, egress: default_security_groups() });
        }
        spec.env = env;
        spec.cwd = request.cwd.clone().unwrap_or(cwd);
        if let Some(config) = &runtime_config {
            // Images run as the user they name, root when they name none (as Docker does).
            spec.user = resolve_user(&roots, config.user.as_deref().unwrap_or("0"));
        }
        if let Some(user) = request.user {
            spec.user = user;
        }
        spec.limits = Limits { memory_bytes: request.memory_bytes, cpu_shares: None, pids: request.pids };
        let created = async {
            self.runtime.create(&id, &spec).await?;
            self.runtime.info(&id).await
        }
        .await;
        match created {
            Ok(info) => Ok(info),
            Err(e) => {
                let _ = self.destroy(&id).await;
                Err(e).with_context(|| format!("cannot create container {id}"))
            }
        }
    }

    /// Removes a container and its root filesystem. Safe to repeat.
    pub async fn destroy(&self, id: &ContainerId) -> anyhow::Result<()> {
        let container = self.runtime.destroy(id).await;
        let images = self.images().clone();
        let rootfs_id = id.to_string();
        let rootfs = tokio::task::spawn_blocking(move || images.destroy_rootfs(&rootfs_id)).await?;
        container?;
        rootfs?;
        Ok(())
    }

    /// A pulled image by reference (as given or fully qualified).
    pub fn image(&self, reference: &str) -> anyhow::Result<ImageRecord> {
        self.images().image(reference).with_context(|| format!("image {reference} is not pulled (hearth images pull)"))
    }
}

/// `base` with `overrides` applied: a later `NAME=value` replaces an earlier one.
fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let mut merged: BTreeMap<&str, &str> = BTreeMap::new();
    let mut order = Vec::new();
    for pair in base.iter().chain(overrides) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if merged.insert(name, value).is_none() {
            order.push(name);
        }
    }
    order.into_iter().map(|name| format!("{name}={}", merged[name])).collect()
}

/// `uid[:gid]` or `name[:group]` as the image's `/etc/passwd` and `/etc/group` say (read
/// from the first of `roots` that has the file: a mounted root, or layers top first); an
/// unknown name falls back to CF's `vcap` (2000), never to root.
fn resolve_user(roots: &[PathBuf], user: &str) -> User {
    let (user, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let lookup = |file: &str, name: &str| -> Option<(u32, Option<u32>)> {
        let text = roots.iter().find_map(|root| std::fs::read_to_string(root.join("etc").join(file)).ok())?;
        text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.first() != Some(&name) {
                return None;
            }
            Some((fields.get(2)?.parse().ok()?, fields.get(3).and_then(|g| g.parse().ok())))
        })
    };
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(uid) => (uid, None),
        Err(_) => lookup("passwd", user).unwrap_or((2000, Some(2000))),
    };
    let gid = match group {
        Some(g) => g.parse().ok().or_else(|| lookup("group", g).map(|(gid, _)| gid)).unwrap_or(uid),
        None => primary_gid.unwrap_or(uid),
    };
    User { uid, gid }
}

/// Rootless mode's id map and image store settings, or what the user must do first.
fn rootless_setup(config: &NodeConfig, helper: &Path) -> anyhow::Result<(IdMap, StoreConfig)> {
    let id_map = rootless::current_user_id_map().context("hearth server runs as an ordinary user (rootless mode)")?;
    let parent = PathBuf::from(format!("/{}", config.cgroup_parent));
    if let Some(dir) = cgroup::undelegated(&parent) {
        match cgroup::mode() {
            // libcontainer 0.7 cannot make a container on cgroup v1 without a delegated parent.
            cgroup::Mode::V1 => bail!(
                "rootless mode on cgroup v1: {} is not writable by this user. As root, create {parent} in each \
                 /sys/fs/cgroup/<hierarchy> (copy cpuset.cpus and cpuset.mems into the cpuset one), chown it to \
                 the user, and start with --cgroup-parent {}",
                dir.display(),
                config.cgroup_parent,
                parent = parent.display(),
            ),
            cgroup::Mode::V2 => tracing::warn!(
                cgroup = %dir.display(),
                "rootless: the cgroup parent is not delegated to this user: memory, CPU and pids limits are not \
                 enforced"
            ),
        }
    }
    tracing::warn!("disk limits are not enforced when hearth server runs as an ordinary user");
    let namespace = UserNamespace {
        sub_uid: id_map.host_uid,
        sub_gid: id_map.host_gid,
        count: id_map.size,
        helper: helper.to_path_buf(),
    };
    let store = StoreConfig {
        disk_limits: DiskLimitBackend::Unenforced,
        user_namespace: Some(namespace),
        ..Default::default()
    };
    Ok((id_map, store))
}

fn check_searchable(dir: &Path) -> anyhow::Result<()> {
    for ancestor in dir.ancestors() {
        let mode = std::fs::metadata(ancestor)
            .with_context(|| format!("cannot read {}", ancestor.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            bail!(
                "{} is not searchable by others: containers cannot reach root filesystems under {}; \
                 choose another --node-dir or chmod o+x it",
                ancestor.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// The egress a networked container gets: Cloud Foundry's default security groups,
/// `public_networks` (every address but the private, link-local and loopback ranges) and
/// `dns` (port 53 anywhere), so apps reach the internet and resolve names (a resolver on a
/// private address included) but not the machine's private networks.
pub fn default_security_groups() -> Vec<EgressRule> {
    let range = |a: [u8; 4], b: [u8; 4]| Destination::Range(a.into(), b.into());
    let public = [
        range([0, 0, 0, 0], [9, 255, 255, 255]),
        range([11, 0, 0, 0], [126, 255, 255, 255]),
        range([128, 0, 0, 0], [169, 253, 255, 255]),
        range([169, 255, 0, 0], [172, 15, 255, 255]),
        range([172, 32, 0, 0], [192, 167, 255, 255]),
        range([192, 169, 0, 0], [255, 255, 255, 255]),
    ];
    let anywhere = Destination::Cidr([0, 0, 0, 0].into(), 0);
    let dns = Some(PortRange { first: 53, last: 53 });
    public
        .into_iter()
        .map(|destination| EgressRule { protocol: Protocol::All, destination, ports: None })
        .chain([Protocol::Udp, Protocol::Tcp].map(|protocol| EgressRule {
            protocol,
            destination: anywhere,
            ports: dns,
        }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_reach_public_networks_and_dns_but_not_private_networks() {
        let groups = default_security_groups();
        let allowed = |addr: [u8; 4], protocol: Protocol, port: u16| {
            groups.iter().any(|r| {
                r.destination.contains(addr.into())
                    && (r.protocol == Protocol::All || r.protocol == protocol)
                    && r.ports.is_none_or(|p| p.first <= port && port <= p.last)
            })
        };
        for public in [[1, 1, 1, 1], [8, 8, 8, 8], [172, 32, 0, 1], [192, 169, 0, 1], [203, 0, 113, 9]] {
            assert!(allowed(public, Protocol::Tcp, 443), "{public:?}");
        }
        for private in [[10, 0, 0, 5], [172, 16, 3, 4], [192, 168, 1, 1], [169, 254, 169, 254], [127, 0, 0, 1]] {
            assert!(!allowed(private, Protocol::Tcp, 5432), "{private:?}");
            assert!(allowed(private, Protocol::Udp, 53) && allowed(private, Protocol::Tcp, 53), "DNS to {private:?}");
        }
    }

    #[test]
    fn image_users_resolve_by_number_or_through_the_images_passwd() {
        let root = std::env::temp_dir().join(format!("hearth-node-user-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nweb:x:1001:1002::/home/web:/bin/sh\n")
            .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let roots = [root.join("top-layer-without-etc"), root.clone()];
        assert_eq!(resolve_user(&roots, "0"), User { uid: 0, gid: 0 });
        assert_eq!(resolve_user(&roots, "1234:5"), User { uid: 1234, gid: 5 });
        assert_eq!(resolve_user(&roots, "web"), User { uid: 1001, gid: 1002 });
        assert_eq!(resolve_user(&roots, "web:staff"), User { uid: 1001, gid: 50 });
        assert_eq!(resolve_user(&roots, "nobody-here"), User { uid: 2000, gid: 2000 });
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn later_environment_entries_replace_earlier_ones_in_place() {
        let base = vec!["PATH=/bin".to_string(), "HOME=/".to_string()];
        let merged = merge_env(&base, &["HOME=/home/vcap".to_string(), "PORT=8080".to_string()]);
        assert_eq!(merged, ["PATH=/bin", "HOME=/home/vcap", "PORT=8080"]);
    }
}

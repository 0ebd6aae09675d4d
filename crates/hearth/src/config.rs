//! Server configuration: defaults, then an optional TOML file, then environment
//! variables and flags (clap reads both), each overriding the one before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use hearth_cell::node::NodeConfig;

/// `hearth server`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Where Hearth keeps its database, keys and blobs
    #[arg(long, env = "HEARTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The one front address: API, auth and (later) apps
    #[arg(long, env = "HEARTH_LISTEN")]
    pub listen: Option<String>,
    /// postgres://… to use PostgreSQL (default: SQLite in the data directory)
    #[arg(long, env = "HEARTH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// A TOML file with any of these settings
    #[arg(long, env = "HEARTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// The shared domain apps get routes on
    #[arg(long, env = "HEARTH_APP_DOMAIN")]
    pub app_domain: Option<String>,
    /// The URL clients reach the platform at (default: http://LISTEN)
    #[arg(long, env = "HEARTH_EXTERNAL_URL")]
    pub external_url: Option<String>,
    /// Where containers and images live (default /var/lib/hearth, every parent o+x; as an
    /// ordinary user DATA_DIR/node)
    #[arg(long, env = "HEARTH_NODE_DIR")]
    pub node_dir: Option<PathBuf>,
    /// A registry (host:port) to pull from over plain HTTP; repeat for more
    #[arg(long = "insecure-registry", env = "HEARTH_INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,
    /// Run no containers on this machine
    #[arg(long)]
    pub no_containers: bool,
    /// Do not push the sample app `hello` on the first start
    #[arg(long, env = "HEARTH_NO_SAMPLE_APP")]
    pub no_sample_app: bool,
    /// The cgroup every container's cgroup is made under (default: hearth)
    #[arg(long, env = "HEARTH_CGROUP_PARENT")]
    pub cgroup_parent: Option<String>,
    /// The longest a staging may run before it is stopped (e.g. 90s, 15m; default 15m as CF)
    #[arg(long, env = "HEARTH_STAGING_TIMEOUT")]
    pub staging_timeout: Option<String>,
    /// HTTPS on this address too (needs --tls-cert and --tls-key, or [tls] in the file)
    #[arg(long, env = "HEARTH_TLS_LISTEN")]
    pub tls_listen: Option<String>,
    /// The default certificate (PEM) HTTPS serves when no other matches the SNI name
    #[arg(long, env = "HEARTH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(long, env = "HEARTH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// What this process runs: `all` (the platform and a cell, the default), `platform`
    /// (API, scheduler, router and staging, no instances) or `cell` (a cell joining a
    /// server: needs --join and --token)
    #[arg(long, env = "HEARTH_ROLES", default_value = "all", value_parser = ["all", "platform", "cell"])]
    pub roles: String,
    /// Accept cells from other machines on this address (mutual TLS); the join token is
    /// printed at start
    #[arg(long, env = "HEARTH_CELL_LISTEN")]
    pub cell_listen: Option<String>,
    /// With --roles cell: the server's cell endpoint (https://HOST:PORT, printed at its start)
    #[arg(long, env = "HEARTH_JOIN", required_if_eq("roles", "cell"))]
    pub join: Option<String>,
    /// With --roles cell: the join token the server printed (DATA_DIR/cells/join-token there)
    #[arg(long, env = "HEARTH_JOIN_TOKEN", required_if_eq("roles", "cell"))]
    pub token: Option<String>,
    /// With --roles cell: this cell's id (default: cell-HOSTNAME)
    #[arg(long, env = "HEARTH_CELL_ID")]
    pub cell_id: Option<String>,
    /// With --roles cell: the address the server reaches this machine's instances at
    #[arg(long, env = "HEARTH_ADVERTISE_ADDRESS", required_if_eq("roles", "cell"))]
    pub advertise_address: Option<std::net::IpAddr>,
}

/// Size limits (`[limits]` in the file): bytes, or with a unit as in CF manifests (512M, 1G).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// The largest package upload (app bits zip) [default: 1G]
    #[arg(long, env = "HEARTH_MAX_PACKAGE_BYTES", value_name = "SIZE")]
    pub max_package_bytes: Option<String>,
    /// The largest droplet upload (tgz) [default: 1G]
    #[arg(long, env = "HEARTH_MAX_DROPLET_BYTES", value_name = "SIZE")]
    pub max_droplet_bytes: Option<String>,
    /// The largest buildpack upload (zip) [default: 1G]
    #[arg(long, env = "HEARTH_MAX_BUILDPACK_BYTES", value_name = "SIZE")]
    pub max_buildpack_bytes: Option<String>,
    /// The most one package, droplet or buildpack may unpack to [default: 4G]
    #[arg(long, env = "HEARTH_MAX_UNPACKED_BYTES", value_name = "SIZE")]
    pub max_unpacked_bytes: Option<String>,
    /// The most entries (files, directories, links) one archive may hold [default: 200000]
    #[arg(long, env = "HEARTH_MAX_ARCHIVE_ENTRIES", value_name = "COUNT")]
    pub max_archive_entries: Option<String>,
    /// The largest JSON request body [default: 1M]
    #[arg(long, env = "HEARTH_MAX_REQUEST_BODY_BYTES", value_name = "SIZE")]
    pub max_request_body_bytes: Option<String>,
}

/// A size in the file: a TOML integer (bytes) or a string with a unit ("512M").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    Number(i64),
    Text(String),
}

/// `[limits]`: how large uploads, unpacked archives and request bodies may be.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_package_bytes: Option<SizeValue>,
    pub max_droplet_bytes: Option<SizeValue>,
    pub max_buildpack_bytes: Option<SizeValue>,
    pub max_unpacked_bytes: Option<SizeValue>,
    pub max_archive_entries: Option<SizeValue>,
    pub max_request_body_bytes: Option<SizeValue>,
}

/// `[tls]`: HTTPS on its own address with certificates per host name (SNI).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub listen: Option<String>,
    #[serde(default)]
    pub certs: Vec<CertFile>,
}

/// One `[[tls.certs]]`: PEM files and the names they serve (`*.apps.example.com` allowed;
/// none: the default certificate).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFile {
    #[serde(default)]
    pub names: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[blobstore]`: where packages, droplets and buildpacks go (default: DATA_DIR/blobs).
/// S3 credentials may also come from `HEARTH_S3_ACCESS_KEY_ID` and `HEARTH_S3_SECRET_ACCESS_KEY`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum BlobstoreFile {
    Local {
        root: PathBuf,
    },
    S3 {
        endpoint: Option<String>,
        bucket: String,
        #[serde(default = "default_region")]
        region: String,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        #[serde(default)]
        path_style: bool,
    },
}

fn default_region() -> String {
    "us-east-1".into()
}

/// The TOML file's shape (every key optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub app_domain: Option<String>,
    pub external_url: Option<String>,
    pub access_token_validity_secs: Option<i64>,
    pub refresh_token_validity_secs: Option<i64>,
    pub node_dir: Option<PathBuf>,
    pub insecure_registries: Option<Vec<String>>,
    pub containers: Option<bool>,
    pub cgroup_parent: Option<String>,
    pub tls: Option<TlsFile>,
    pub blobstore: Option<BlobstoreFile>,
    pub staging_timeout: Option<String>,
    pub limits: Option<LimitsFile>,
}

/// The settings the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: String,
    pub database_url: String,
    pub app_domain: String,
    /// Where clients reach the platform; `None` means `http://` + the bound address.
    pub external_url: Option<String>,
    pub access_token_validity_secs: i64,
    pub refresh_token_validity_secs: i64,
    /// The initial admin password (`HEARTH_ADMIN_PASSWORD`); generated when absent.
    pub admin_password: Option<String>,
    /// The `admin` client's secret (`HEARTH_ADMIN_CLIENT_SECRET`); generated when absent.
    pub admin_client_secret: Option<String>,
    /// The container runtime and image store; `None` runs no containers.
    pub node: Option<NodeConfig>,
    /// HTTPS beside the plain front address, certificates read at start.
    pub tls: Option<hearth_router::TlsConfig>,
    pub blobstore: hearth_blobstore::BlobStoreConfig,
    /// The longest a staging may run (CF's default: 15 minutes).
    pub staging_timeout: Duration,
    /// Upload, unpacked-archive and request-body sizes.
    pub limits: hearth_api::Limits,
    /// Run a cell on this machine beside the platform (`--roles all`).
    pub local_cell: bool,
    /// Where cells on other machines connect (`--cell-listen`).
    pub cell_listen: Option<String>,
}

/// CF's staging time limit.
pub const DEFAULT_STAGING_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// `90`, `90s`, `15m` or `1h` as a duration of at least one second.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => anyhow::bail!("{text:?} is not a duration (a whole number of seconds, or with s, m or h: 90s, 15m)"),
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n.saturating_mul(scale))),
        _ => anyhow::bail!("{text:?} is not a duration (a whole number of seconds, or with s, m or h: 90s, 15m)"),
    }
}

/// `1048576`, `512K`, `512KB`, `1M`, `1G`, `2T` (units of 1024, any case, as CF manifests
/// write memory) as a number of bytes, at least one.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let bad = || anyhow::anyhow!("{text:?} is not a size (bytes, or a whole number with B, K, M, G or T: 512M, 1G)");
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" => 10,
        "M" | "MB" => 20,
        "G" | "GB" => 30,
        "T" | "TB" => 40,
        _ => return Err(bad()),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    match n.checked_mul(1 << shift) {
        Some(bytes) if bytes > 0 => Ok(bytes),
        Some(_) => anyhow::bail!("{text:?} is zero: a limit must be at least 1 byte"),
        None => anyhow::bail!("{text:?} is too large"),
    }
}

/// A whole number of at least one (an entry count).
fn parse_count(text: &str) -> anyhow::Result<u64> {
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => anyhow::bail!("{text:?} is not a count (a whole number of at least 1)"),
    }
}

/// The limits from the flags (or their env) over `[limits]` over the defaults; a bad value
/// stops the start naming its setting.
fn limits_config(args: &LimitArgs, file: Option<LimitsFile>) -> anyhow::Result<hearth_api::Limits> {
    let file = file.unwrap_or_default();
    let d = hearth_api::Limits::DEFAULT;
    let pick = |flag: &Option<String>, key: Option<SizeValue>, name: &str, default: u64| -> anyhow::Result<u64> {
        let parse = if name.ends_with("_entries") { parse_count } else { parse_size };
        match (flag, key) {
            (Some(text), _) => parse(text).with_context(|| format!("--{}", name.replace('_', "-"))),
            (None, Some(SizeValue::Text(text))) => parse(&text).with_context(|| format!("[limits] {name}")),
            (None, Some(SizeValue::Number(n))) => {
                parse(&n.to_string()).with_context(|| format!("[limits] {name}: a limit must be at least 1"))
            }
            (None, None) => Ok(default),
        }
    };
    Ok(hearth_api::Limits {
        package_bytes: pick(&args.max_package_bytes, file.max_package_bytes, "max_package_bytes", d.package_bytes)?,
        droplet_bytes: pick(&args.max_droplet_bytes, file.max_droplet_bytes, "max_droplet_bytes", d.droplet_bytes)?,
        buildpack_bytes: pick(
            &args.max_buildpack_bytes,
            file.max_buildpack_bytes,
            "max_buildpack_bytes",
            d.buildpack_bytes,
        )?,
        unpacked_bytes: pick(
            &args.max_unpacked_bytes,
            file.max_unpacked_bytes,
            "max_unpacked_bytes",
            d.unpacked_bytes,
        )?,
        archive_entries: pick(
            &args.max_archive_entries,
            file.max_archive_entries,
            "max_archive_entries",
            d.archive_entries,
        )?,
        request_body_bytes: pick(
            &args.max_request_body_bytes,
            file.max_request_body_bytes,
            "max_request_body_bytes",
            d.request_body_bytes,
        )?,
    })
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

fn default_data_dir() -> PathBuf {
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("hearth")
}

impl ServerConfig {
    pub fn resolve(args: &ServerArgs) -> anyhow::Result<ServerConfig> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("config file {} is invalid", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = args.data_dir.clone().or(file.data_dir).unwrap_or_else(default_data_dir);
        let listen = args.listen.clone().or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let database_url = args.database_url.clone().or(file.database_url).unwrap_or_else(|| sqlite_url(&data_dir));
        let external_url = args.external_url.clone().or(file.external_url);
        let env_secs = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<i64>().ok());
        let tls = tls_config(args, file.tls)?;
        let blobstore = blobstore_config(&data_dir, file.blobstore)?;
        let limits = limits_config(&args.limits, file.limits)?;
        let user_node_dir = data_dir.join("node");
        Ok(ServerConfig {
            data_dir,
            listen,
            database_url,
            app_domain: args.app_domain.clone().or(file.app_domain).unwrap_or_else(|| "apps.localhost".into()),
            external_url: external_url.map(|u| u.trim_end_matches('/').to_string()),
            access_token_validity_secs: env_secs("HEARTH_ACCESS_TOKEN_VALIDITY")
                .or(file.access_token_validity_secs)
                .unwrap_or(12 * 3600),
            refresh_token_validity_secs: env_secs("HEARTH_REFRESH_TOKEN_VALIDITY")
                .or(file.refresh_token_validity_secs)
                .unwrap_or(30 * 24 * 3600),
            admin_password: std::env::var("HEARTH_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()),
            admin_client_secret: std::env::var("HEARTH_ADMIN_CLIENT_SECRET").ok().filter(|p| !p.is_empty()),
            node: (!args.no_containers && file.containers.unwrap_or(true)).then(|| NodeConfig {
                // An ordinary user (rootless mode) keeps its node under the data directory.
                dir: args.node_dir.clone().or(file.node_dir).unwrap_or_else(|| {
                    match rustix::process::geteuid().is_root() {
                        true => NodeConfig::default_dir(),
                        false => user_node_dir,
                    }
                }),
                insecure_registries: if args.insecure_registries.is_empty() {
                    file.insecure_registries.unwrap_or_default()
                } else {
                    args.insecure_registries.clone()
                },
                cgroup_parent: args.cgroup_parent.clone().or(file.cgroup_parent).unwrap_or_else(|| "hearth".into()),
                helper: None,
                network: node_network(rustix::process::geteuid().is_root()),
            }),
            tls,
            blobstore,
            staging_timeout: match args.staging_timeout.as_ref().or(file.staging_timeout.as_ref()) {
                Some(t) => parse_duration(t).context("--staging-timeout")?,
                None => DEFAULT_STAGING_TIMEOUT,
            },
            limits,
            local_cell: args.roles == "all",
            cell_listen: args.cell_listen.clone(),
        })
    }

    /// A configuration for tests: a data directory, loopback on a free port.
    pub fn for_dir(data_dir: &Path, database_url: Option<String>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.to_path_buf(),
            listen: "127.0.0.1:0".into(),
            database_url: database_url.unwrap_or_else(|| sqlite_url(data_dir)),
            app_domain: "apps.localhost".into(),
            external_url: None,
            access_token_validity_secs: 12 * 3600,
            refresh_token_validity_secs: 30 * 24 * 3600,
            admin_password: None,
            admin_client_secret: None,
            node: None,
            tls: None,
            blobstore: hearth_blobstore::BlobStoreConfig::Local { root: data_dir.join("blobs") },
            staging_timeout: DEFAULT_STAGING_TIMEOUT,
            limits: hearth_api::Limits::DEFAULT,
            local_cell: true,
            cell_listen: None,
        }
    }
}

/// HTTPS from the flags (one default certificate) and `[tls]`, PEM files read now so a
/// missing or unreadable one stops the start with its name.
fn tls_config(args: &ServerArgs, file: Option<TlsFile>) -> anyhow::Result<Option<hearth_router::TlsConfig>> {
    let file = file.unwrap_or_default();
    let Some(listen) = args.tls_listen.clone().or(file.listen) else {
        anyhow::ensure!(args.tls_cert.is_none(), "--tls-cert needs --tls-listen (the HTTPS address)");
        return Ok(None);
    };
    let listen = listen.parse().with_context(|| format!("the HTTPS address {listen} is not HOST:PORT"))?;
    let read =
        |path: &Path| std::fs::read_to_string(path).with_context(|| format!("cannot read TLS file {}", path.display()));
    let mut certs = Vec::new();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        certs.push(hearth_router::CertConfig { names: Vec::new(), cert_pem: read(cert)?, key_pem: read(key)? });
    }
    for c in file.certs {
        certs.push(hearth_router::CertConfig { names: c.names, cert_pem: read(&c.cert)?, key_pem: read(&c.key)? });
    }
    anyhow::ensure!(!certs.is_empty(), "HTTPS on {listen} needs a certificate: --tls-cert and --tls-key");
    Ok(Some(hearth_router::TlsConfig { listen, certs }))
}

fn blobstore_config(data_dir: &Path, file: Option<BlobstoreFile>) -> anyhow::Result<hearth_blobstore::BlobStoreConfig> {
    use hearth_blobstore::BlobStoreConfig;
    Ok(match file {
        None => BlobStoreConfig::Local { root: data_dir.join("blobs") },
        Some(BlobstoreFile::Local { root }) => BlobStoreConfig::Local { root },
        Some(BlobstoreFile::S3 { endpoint, bucket, region, access_key_id, secret_access_key, path_style }) => {
            let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let access_key_id = env("HEARTH_S3_ACCESS_KEY_ID")
                .or(access_key_id)
                .context("[blobstore] kind = \"s3\" needs access_key_id (or HEARTH_S3_ACCESS_KEY_ID)")?;
            let secret_access_key = env("HEARTH_S3_SECRET_ACCESS_KEY")
                .or(secret_access_key)
                .context("[blobstore] kind = \"s3\" needs secret_access_key (or HEARTH_S3_SECRET_ACCESS_KEY)")?;
            BlobStoreConfig::S3(hearth_blobstore::S3Config {
                endpoint,
                bucket,
                region,
                access_key_id,
                secret_access_key,
                path_style,
            })
        }
    })
}

fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("hearth.db").display())
}

/// The network containers get. Root's: the bridge and host ports 61000-61999. An ordinary
/// user's (pasta) forwards host ports 65000-65499 instead: a root server's firewall
/// redirects the host's own connections to its ports in 61000-61999 whoever listens there,
/// so the two would take each other's instances.
fn node_network(root: bool) -> hearth_containers::NetworkConfig {
    let network = hearth_containers::NetworkConfig::default();
    match root {
        true => network,
        false => hearth_containers::NetworkConfig { host_ports: 65000..=65499, ..network },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments with nothing given but the config file.
    fn args_with(config: Option<PathBuf>) -> ServerArgs {
        ServerArgs {
            data_dir: None,
            listen: None,
            database_url: None,
            config,
            app_domain: None,
            external_url: None,
            node_dir: None,
            insecure_registries: Vec::new(),
            cgroup_parent: None,
            no_containers: false,
            no_sample_app: false,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            staging_timeout: None,
            limits: LimitArgs::default(),
            roles: "all".into(),
            cell_listen: None,
            join: None,
            token: None,
            cell_id: None,
            advertise_address: None,
        }
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let dir = std::env::temp_dir().join(format!("hearth-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hearth.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9999\"\napp_domain = \"apps.example.com\"\n").unwrap();
        let args = ServerArgs {
            data_dir: Some(dir.clone()),
            listen: Some("127.0.0.1:7777".into()),
            ..args_with(Some(file.clone()))
        };
        let c = ServerConfig::resolve(&args).unwrap();
        assert_eq!(c.staging_timeout, DEFAULT_STAGING_TIMEOUT);
        assert_eq!(c.listen, "127.0.0.1:7777");
        assert_eq!(c.app_domain, "apps.example.com");
        assert_eq!(c.external_url, None);
        assert!(c.database_url.starts_with("sqlite://") && c.database_url.ends_with("hearth.db"));
        std::fs::write(&file, "listen = 5\n").unwrap();
        assert!(ServerConfig::resolve(&args).is_err(), "a wrongly typed key is an error");
        std::fs::write(&file, "colour = \"blue\"\n").unwrap();
        assert!(ServerConfig::resolve(&args).is_err(), "an unknown key is an error");
        let timed = ServerArgs { staging_timeout: Some("bad".into()), config: None, ..args.clone() };
        assert!(ServerConfig::resolve(&timed).unwrap_err().to_string().contains("--staging-timeout"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn limits_come_from_flags_over_the_file_over_the_defaults() {
        let dir = std::env::temp_dir().join(format!("hearth-limits-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hearth.toml");
        let resolve = |toml: &str, flags: LimitArgs| {
            std::fs::write(&file, toml).unwrap();
            ServerConfig::resolve(&ServerArgs {
                data_dir: Some(dir.clone()),
                limits: flags,
                ..args_with(Some(file.clone()))
            })
        };
        let c = resolve(
            "[limits]\nmax_package_bytes = \"512M\"\nmax_droplet_bytes = 2048\nmax_archive_entries = 10\n",
            LimitArgs {
                max_buildpack_bytes: Some("2g".into()),
                max_droplet_bytes: Some("3K".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let d = hearth_api::Limits::DEFAULT;
        assert_eq!(c.limits.package_bytes, 512 << 20);
        assert_eq!(c.limits.droplet_bytes, 3 << 10, "a flag beats the file");
        assert_eq!(c.limits.buildpack_bytes, 2 << 30);
        assert_eq!(c.limits.archive_entries, 10);
        assert_eq!((c.limits.unpacked_bytes, c.limits.request_body_bytes), (d.unpacked_bytes, d.request_body_bytes));
        assert_eq!(resolve("", LimitArgs::default()).unwrap().limits, d);
        for (toml, named) in [
            ("[limits]\nmax_package_bytes = \"lots\"\n", "max_package_bytes"),
            ("[limits]\nmax_unpacked_bytes = 0\n", "max_unpacked_bytes"),
            ("[limits]\nmax_request_body_bytes = -1\n", "max_request_body_bytes"),
            ("[limits]\nmax_archive_entries = \"1G\"\n", "max_archive_entries"),
            ("[limits]\nmax_packages = 5\n", "max_packages"),
        ] {
            let err = format!("{:#}", resolve(toml, LimitArgs::default()).unwrap_err());
            assert!(err.contains(named), "{toml}: {err}");
        }
        let flag = LimitArgs { max_droplet_bytes: Some("1.5G".into()), ..Default::default() };
        assert!(format!("{:#}", resolve("", flag).unwrap_err()).contains("--max-droplet-bytes"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes_take_bytes_or_units_of_1024() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("2 T").unwrap(), 2 << 40);
        for bad in ["", "0", "0M", "M", "1.5G", "-1", "1X", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_take_seconds_minutes_or_hours() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "0", "s", "1d", "-5", "1.5m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}

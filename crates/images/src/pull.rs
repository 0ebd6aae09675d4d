//! Pulling an image from an OCI or Docker v2 registry into the store.
//!
//! The registry protocol (auth challenges, tokens, URLs) is `oci-client`'s; this module decides
//! what to trust. Every manifest, config and layer blob is hashed here and compared with the digest
//! that named it; each layer's uncompressed stream is compared with the config's diff id. A small
//! layer is gathered in memory and unpacked once complete; a large one is unpacked while it
//! downloads, its bytes also kept in `tmp/downloads/` so a later pull resumes from there (see
//! `feed`). A network failure resumes within the pull; a layer is renamed into the store once
//! its blob and diff id check out; a mismatch removes everything the pull wrote.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::{StreamExt, future};
use oci_client::client::BlobResponse;
use oci_client::manifest::{
    IMAGE_DOCKER_CONFIG_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use tokio::sync::Semaphore;

use crate::clients::Clients;
use crate::feed::{self, Sink, unpack_whole};
use crate::store::{ImageLayer, remove_any};
use crate::{Digest, Error, ImageRecord, Progress, PullEvent, Result, RuntimeConfig, Store};

const MANIFEST_TYPES: &[&str] =
    &[OCI_IMAGE_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE];
const CONFIG_TYPES: &[&str] = &["application/vnd.oci.image.config.v1+json", IMAGE_DOCKER_CONFIG_MEDIA_TYPE];
/// Layer media types whose content is a tar stream (plain, gzip or zstd; the bytes decide).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];
/// Attempts per layer download; each one resumes where the last stopped.
const DOWNLOAD_ATTEMPTS: usize = 3;

/// The platform to pick from an index or manifest list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Self { os: "linux".into(), architecture: "amd64".into(), variant: None }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// How the puller reaches registries.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Registries (`host:port`) spoken to over plain HTTP; all others use HTTPS.
    pub insecure_registries: Vec<String>,
    pub platform: Platform,
    /// Layers of one image fetched at the same time.
    pub concurrent_layers: usize,
    /// Layers up to this compressed size are gathered in memory and unpacked once complete
    /// (a gzip one inflated in one call, about twice as fast as inflating a stream); larger
    /// ones are unpacked while they download, their bytes kept on disk for a resume.
    pub whole_layer_max: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            platform: Platform::default(),
            concurrent_layers: 4,
            whole_layer_max: 32 << 20,
        }
    }
}

/// Credentials for one pull. Basic credentials also answer a token (bearer) challenge.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

/// Per-pull options.
#[derive(Default, Clone)]
pub struct PullOptions {
    pub credentials: Credentials,
    pub progress: Option<Arc<dyn Progress>>,
}

/// Pulls images into a store.
#[derive(Clone)]
pub struct Puller {
    clients: Arc<Clients>,
    store: Store,
    config: RegistryConfig,
}

/// The fully qualified form of a reference, as image records are keyed.
pub(crate) fn canonical_reference(reference: &str) -> Result<String> {
    Ok(parse_reference(reference)?.whole())
}

fn parse_reference(reference: &str) -> Result<Reference> {
    reference
        .parse::<Reference>()
        .map_err(|e| Error::BadReference { reference: reference.to_string(), reason: e.to_string() })
}

/// Everything one pull needs while its layers are fetched.
struct Job<'a> {
    /// The client for this pull's credentials (see [`Clients`]).
    client: Client,
    reference: &'a Reference,
    name: String,
    progress: Option<&'a dyn Progress>,
}

impl Job<'_> {
    fn report(&self, event: PullEvent) {
        if let Some(p) = self.progress {
            p.event(event);
        }
    }

    fn registry_error(&self, e: oci_client::errors::OciDistributionError) -> Error {
        Error::Registry { reference: self.name.clone(), source: Box::new(e) }
    }
}

impl Puller {
    pub fn new(store: Store, config: RegistryConfig) -> Self {
        Self { clients: Arc::new(Clients::new(config.insecure_registries.clone())), store, config }
    }

    /// The store this puller fills.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Pulls `reference` (`registry/repository:tag` or `…@sha256:…`) and records it.
    pub async fn pull(&self, reference: &str, options: &PullOptions) -> Result<ImageRecord> {
        let parsed = parse_reference(reference)?;
        let job = Job {
            client: self.clients.get(&options.credentials),
            reference: &parsed,
            name: parsed.whole(),
            progress: options.progress.as_deref(),
        };
        let auth = match &options.credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => RegistryAuth::Basic(username.clone(), password.clone()),
        };
        let (mut bytes, mut digest) = self.manifest(&job, &parsed, &auth).await?;
        let mut index_digest = None;
        if is_index(&bytes, &job)? {
            let index = ImageIndex::from_reader(&bytes[..]).map_err(|e| malformed(&job.name, "index", e))?;
            let chosen = self.choose(&index, &job)?;
            self.store.put_blob(&bytes)?;
            index_digest = Some(digest);
            (bytes, digest) = self.manifest(&job, &parsed.clone_with_digest(chosen.to_string()), &auth).await?;
            if is_index(&bytes, &job)? {
                return Err(malformed(&job.name, "index", "an index entry is itself an index"));
            }
        }
        let manifest = ImageManifest::from_reader(&bytes[..]).map_err(|e| malformed(&job.name, "manifest", e))?;
        let config_bytes = self.config_blob(&job, manifest.config()).await?;
        let config =
            ImageConfiguration::from_reader(&config_bytes[..]).map_err(|e| malformed(&job.name, "image config", e))?;
        let layers = layer_list(&job, &manifest, &config)?;
        job.report(PullEvent::Resolved {
            manifest: digest.clone(),
            layers: layers.len(),
            total_bytes: layers.iter().map(|l| l.size).sum(),
        });
        // Held until the record is written and any collection below is done: gc leaves these alone.
        let _lease = self.store.lease(&layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>());
        // Every layer's fetch runs to its end (and cleans up after itself) before a failure is
        // returned: a sibling dropped mid-unpack would leave its staging directory behind.
        // The futures are collected first: a closure in the stream's type would make the pull
        // future fail `Send` checks when spawned (rustc's higher-ranked lifetime limitation).
        let limits = Limits::new(self.config.concurrent_layers);
        let fetches: Vec<_> = layers.iter().map(|layer| self.ensure_layer(&job, layer, &limits)).collect();
        let downloaded = future::join_all(fetches).await.into_iter().collect::<Result<Vec<bool>>>()?;
        for layer in &layers {
            self.store.touch_layer(&layer.diff_id);
        }
        self.store.put_blob(&bytes)?;
        let config_digest = self.store.put_blob(&config_bytes)?;
        let record = ImageRecord {
            reference: job.name.clone(),
            manifest_digest: digest,
            index_digest,
            config_digest,
            layers,
            runtime: RuntimeConfig::from_image(&config),
        };
        self.store.put_image(&record)?;
        let counters = self.store.counters();
        counters.pulls.fetch_add(1, Ordering::Relaxed);
        let missed = if downloaded.contains(&true) { &counters.pull_cache_misses } else { &counters.pull_cache_hits };
        missed.fetch_add(1, Ordering::Relaxed);
        if let Some(threshold) = self.store.config().cache_threshold {
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.gc_to(threshold)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "collecting unused layers after a pull failed"),
                Err(e) => tracing::warn!(error = %e, "collecting unused layers after a pull failed"),
            }
        }
        Ok(record)
    }

    /// Reads what an image runs (entrypoint, cmd, user, env, ports) and its manifest digest
    /// from the registry without fetching its layers (docker staging).
    pub async fn inspect(&self, reference: &str, credentials: &Credentials) -> Result<(Digest, RuntimeConfig)> {
        let parsed = parse_reference(reference)?;
        let job =
            Job { client: self.clients.get(credentials), reference: &parsed, name: parsed.whole(), progress: None };
        let auth = match credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => RegistryAuth::Basic(username.clone(), password.clone()),
        };
        let (mut bytes, mut digest) = self.manifest(&job, &parsed, &auth).await?;
        if is_index(&bytes, &job)? {
            let index = ImageIndex::from_reader(&bytes[..]).map_err(|e| malformed(&job.name, "index", e))?;
            let chosen = self.choose(&index, &job)?;
            (bytes, digest) = self.manifest(&job, &parsed.clone_with_digest(chosen.to_string()), &auth).await?;
        }
        let manifest = ImageManifest::from_reader(&bytes[..]).map_err(|e| malformed(&job.name, "manifest", e))?;
        let config_bytes = self.config_blob(&job, manifest.config()).await?;
        let config =
            ImageConfiguration::from_reader(&config_bytes[..]).map_err(|e| malformed(&job.name, "image config", e))?;
        Ok((digest, RuntimeConfig::from_image(&config)))
    }

    /// Fetches a manifest or index and checks its bytes against the digest that named it (the
    /// reference's own digest when pulling by digest).
    async fn manifest(&self, job: &Job<'_>, reference: &Reference, auth: &RegistryAuth) -> Result<(Vec<u8>, Digest)> {
        let (bytes, _claimed) =
            job.client.pull_manifest_raw(reference, auth, MANIFEST_TYPES).await.map_err(|e| job.registry_error(e))?;
        let actual = Digest::of(&bytes);
        if let Some(expected) = reference.digest() {
            let expected = Digest::parse(expected)?;
            if expected != actual {
                return Err(Error::DigestMismatch { what: format!("manifest of {}", job.name), expected, actual });
            }
        }
        Ok((bytes.to_vec(), actual))
    }

    fn choose<'i>(&self, index: &'i ImageIndex, job: &Job<'_>) -> Result<&'i oci_spec::image::Digest> {
        let want = &self.config.platform;
        index
            .manifests()
            .iter()
            .find(|m| {
                m.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == want.os
                        && p.architecture().to_string() == want.architecture
                        && want.variant.as_ref().is_none_or(|v| p.variant().as_ref() == Some(v))
                })
            })
            .map(|m| m.digest())
            .ok_or_else(|| Error::NoMatchingPlatform { reference: job.name.clone(), platform: want.to_string() })
    }

    async fn config_blob(&self, job: &Job<'_>, descriptor: &Descriptor) -> Result<Vec<u8>> {
        let media_type = descriptor.media_type().to_string();
        if !CONFIG_TYPES.contains(&media_type.as_str()) {
            return Err(Error::UnsupportedMediaType { reference: job.name.clone(), media_type });
        }
        let expected = Digest::parse(descriptor.digest().as_ref())?;
        let mut bytes = Vec::new();
        job.client.pull_blob(job.reference, expected.as_str(), &mut bytes).await.map_err(|e| job.registry_error(e))?;
        check_blob(&format!("config of {}", job.name), &expected, descriptor.size(), &bytes)?;
        Ok(bytes)
    }

    /// Makes sure one layer is stored: the first caller downloads it, concurrent callers wait.
    /// Returns whether this call downloaded it.
    async fn ensure_layer(&self, job: &Job<'_>, layer: &ImageLayer, limits: &Limits) -> Result<bool> {
        let cached = || {
            self.store.counters().layer_cache_hits.fetch_add(1, Ordering::Relaxed);
            job.report(PullEvent::LayerCached { digest: layer.digest.clone(), size: layer.size });
        };
        if self.store.has_layer(&layer.diff_id) {
            cached();
            return Ok(false);
        }
        // Keyed by the blob: its download file is per blob (two configs may even claim different diff ids).
        let _guard = self.store.lock_layer(&layer.digest).await;
        if self.store.has_layer(&layer.diff_id) {
            cached();
            return Ok(false);
        }
        let blob = self.store.download_path(&layer.digest);
        let staging = self.store.tmp_path("unpack");
        // Either way the unpacker checks the diff id against the config's (which the manifest's
        // digest pins), whatever bytes it was given.
        let unpack_args = || (self.store.clone(), layer.diff_id.clone(), layer.digest.clone(), staging.clone());
        let downloading = limits.downloads.acquire().await.expect("never closed");
        let (mut sink, streaming) = if layer.size <= self.config.whole_layer_max {
            (Sink::Whole(Vec::with_capacity(layer.size as usize)), None)
        } else {
            let unpacking = limits.unpacks.acquire().await.expect("never closed");
            let (feed, mut reader) = feed::channel(&blob).map_err(Error::io(&blob))?;
            let (store, diff_id, digest, staging_path) = unpack_args();
            let unpacker = tokio::task::spawn_blocking(move || {
                let record = store.unpack_staged(&mut reader, &staging_path, Some(&diff_id), Some(&digest))?;
                reader.drain().map_err(Error::io(&staging_path))?;
                Ok::<_, Error>(record)
            });
            (Sink::Stream(feed), Some((unpacker, unpacking)))
        };
        let mut received = crate::Sha256Writer::default();
        let mut attempt = 0;
        let downloaded = loop {
            attempt += 1;
            match self.download(job, layer, &mut received, &mut sink).await {
                Err(e @ Error::Registry { .. }) if attempt < DOWNLOAD_ATTEMPTS => {
                    tracing::warn!(layer = %layer.digest, error = %e, "layer download failed; resuming");
                }
                other => break other,
            }
        };
        if downloaded.is_ok() {
            self.store.counters().layer_downloads.fetch_add(1, Ordering::Relaxed);
        }
        let unpacked = match (sink, streaming) {
            (Sink::Stream(feed), Some((unpacker, _unpacking))) => {
                drop(downloading);
                match downloaded {
                    Ok(()) => feed.finish().await,
                    Err(_) => drop(feed),
                }
                unpacker.await
            }
            (Sink::Whole(bytes), _) if downloaded.is_ok() => {
                // The next download starts while this layer waits its turn to unpack, but no
                // more wait than unpack at once (what they hold in memory stays bounded).
                let _unpacking = limits.unpacks.acquire().await.expect("never closed");
                drop(downloading);
                let (store, diff_id, digest, staging) = unpack_args();
                tokio::task::spawn_blocking(move || unpack_whole(&store, bytes, &staging, &diff_id, &digest)).await
            }
            _ => Ok(Err(Error::Task("nothing to unpack".into()))),
        };
        let unpacked = unpacked.map_err(|e| Error::Task(e.to_string())).and_then(|r| r);
        // A download that failed is the cause: the unpack failed only because it stopped.
        let result = downloaded.and(unpacked).and_then(|record| self.store.install_staged(&staging, record));
        let cleanup = self.store.remove_tree(&staging);
        match result {
            // A network failure leaves what arrived, for the next pull to resume.
            Err(e @ Error::Registry { .. }) => return Err(e),
            Err(e) => {
                let _ = remove_any(&blob);
                return Err(e);
            }
            Ok(_) => cleanup.and(remove_any(&blob))?,
        }
        job.report(PullEvent::LayerStored { digest: layer.digest.clone(), size: layer.size });
        Ok(true)
    }

    /// Downloads the rest of a layer blob (all of it on the first attempt, less whatever an
    /// earlier pull left in the download file), hands it to `sink` and verifies it.
    async fn download(
        &self,
        job: &Job<'_>,
        layer: &ImageLayer,
        received: &mut crate::Sha256Writer,
        sink: &mut Sink,
    ) -> Result<()> {
        let path = self.store.download_path(&layer.digest);
        if received.is_empty() && sink.fed() == 0 {
            let partial = tokio::fs::read(&path).await.unwrap_or_default();
            if partial.len() as u64 > layer.size {
                return Err(Error::DigestMismatch {
                    what: format!("layer blob of {}", job.name),
                    expected: layer.digest.clone(),
                    actual: Digest::of(&partial),
                });
            }
            received.update(&partial);
            sink.offer(0, &partial.into(), true).await;
        }
        // A download file holding the whole blob (a crash after it arrived) needs no request:
        // one for the bytes after its end would only be refused.
        if layer.size > 0 && received.len() == layer.size {
            return blob_verified(job, layer, received, false);
        }
        let digest = layer.digest.as_str();
        let mut saved = None;
        // Asked as a range even from the start (`bytes=0-`): oci-client hashes a whole-blob
        // answer itself, and `received` (which also spans resumes) already does, so a range
        // answer is hashed once instead of twice. An empty blob has no range to ask for.
        let mut stream = if layer.size == 0 {
            job.client.pull_blob_stream(job.reference, digest).await.map_err(|e| job.registry_error(e))?
        } else {
            match job
                .client
                .pull_blob_stream_partial(job.reference, digest, received.len(), None)
                .await
                .map_err(|e| job.registry_error(e))?
            {
                BlobResponse::Partial(s) => s,
                BlobResponse::Full(s) => {
                    // The registry ignored the range: the blob starts over. A gathered layer
                    // starts over with it; a streamed one's unpacker already has the saved
                    // bytes (it skips them as they come again), so they must be the same.
                    let had = std::mem::take(received);
                    match sink {
                        Sink::Whole(bytes) => bytes.clear(),
                        Sink::Stream(_) if !had.is_empty() => saved = Some(SavedPrefix::new(had)),
                        Sink::Stream(_) => {}
                    }
                    s
                }
            }
        };
        let (mut failure, mut too_long) = (None, false);
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if received.len() + chunk.len() as u64 > layer.size {
                too_long = true; // longer than its descriptor: refused without storing the rest
                break;
            }
            if let Some(saved) = saved.as_mut()
                && let Err(actual) = saved.check(received.len(), &chunk)
            {
                return Err(Error::DigestMismatch {
                    what: format!("layer blob of {} (the part an earlier pull left)", job.name),
                    expected: saved.digest.clone(),
                    actual,
                });
            }
            sink.offer(received.len(), &chunk, false).await;
            received.update(&chunk);
            self.store.counters().bytes_downloaded.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            job.report(PullEvent::LayerBytes { digest: layer.digest.clone(), done: received.len(), total: layer.size });
        }
        let len = received.len();
        if len < layer.size && !too_long {
            // Cut short: a network failure the next attempt resumes from here.
            let reason = match failure {
                Some(e) => e.to_string(),
                None => format!("layer {} ended after {len} of {} bytes", layer.digest, layer.size),
            };
            return Err(job.registry_error(oci_client::errors::OciDistributionError::GenericError(Some(reason))));
        }
        blob_verified(job, layer, received, too_long)
    }
}

/// Compares a complete layer blob's digest (or a longer one's) with its descriptor's.
fn blob_verified(job: &Job<'_>, layer: &ImageLayer, received: &mut crate::Sha256Writer, too_long: bool) -> Result<()> {
    let actual = std::mem::take(received).finish();
    if actual != layer.digest || too_long {
        return Err(Error::DigestMismatch {
            what: format!("layer blob of {}", job.name),
            expected: layer.digest.clone(),
            actual,
        });
    }
    Ok(())
}

/// What a streamed layer's unpacker already had from the download file when the registry sent
/// the whole blob again: the new stream's first bytes must be those.
struct SavedPrefix {
    len: u64,
    digest: Digest,
    seen: crate::Sha256Writer,
}

impl SavedPrefix {
    fn new(saved: crate::Sha256Writer) -> Self {
        Self { len: saved.len(), digest: saved.finish(), seen: crate::Sha256Writer::default() }
    }

    /// Hashes the part of `chunk` (at `at` in the blob) inside the saved prefix; once all of
    /// it arrived, the digest of what arrived if it is not the saved one.
    fn check(&mut self, at: u64, chunk: &[u8]) -> std::result::Result<(), Digest> {
        if at >= self.len {
            return Ok(());
        }
        let take = ((self.len - at) as usize).min(chunk.len());
        self.seen.update(&chunk[..take]);
        if at + (take as u64) < self.len {
            return Ok(());
        }
        let actual = std::mem::take(&mut self.seen).finish();
        if actual == self.digest { Ok(()) } else { Err(actual) }
    }
}

/// How many layers of one pull download at once, and how many unpack at once. A layer takes
/// its download turn first, then its unpack turn, so neither waits on the other in a cycle.
struct Limits {
    downloads: Semaphore,
    unpacks: Semaphore,
}

impl Limits {
    fn new(layers: usize) -> Self {
        Self { downloads: Semaphore::new(layers.max(1)), unpacks: Semaphore::new(layers.max(1)) }
    }
}

fn is_index(bytes: &[u8], job: &Job<'_>) -> Result<bool> {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let peek: Peek = serde_json::from_slice(bytes).map_err(|e| malformed(&job.name, "manifest", e))?;
    Ok(match peek.media_type.as_deref() {
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE | IMAGE_MANIFEST_LIST_MEDIA_TYPE) => true,
        Some(OCI_IMAGE_MEDIA_TYPE | IMAGE_MANIFEST_MEDIA_TYPE) => false,
        Some(other) => {
            return Err(Error::UnsupportedMediaType { reference: job.name.clone(), media_type: other.to_string() });
        }
        None => peek.manifests.is_some(),
    })
}

/// Pairs the manifest's layers with the config's diff ids, refusing what cannot be a rootfs layer.
fn layer_list(job: &Job<'_>, manifest: &ImageManifest, config: &ImageConfiguration) -> Result<Vec<ImageLayer>> {
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(malformed(
            &job.name,
            "image",
            format!("{} layers but {} diff ids", manifest.layers().len(), diff_ids.len()),
        ));
    }
    manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            let media_type = layer.media_type().to_string();
            if !LAYER_TYPES.contains(&media_type.as_str()) {
                return Err(Error::UnsupportedMediaType { reference: job.name.clone(), media_type });
            }
            Ok(ImageLayer {
                digest: Digest::parse(layer.digest().as_ref())?,
                diff_id: Digest::parse(diff_id)?,
                media_type,
                size: layer.size(),
            })
        })
        .collect()
}

fn check_blob(what: &str, expected: &Digest, size: u64, bytes: &[u8]) -> Result<()> {
    let actual = Digest::of(bytes);
    if actual != *expected {
        return Err(Error::DigestMismatch { what: what.to_string(), expected: expected.clone(), actual });
    }
    if bytes.len() as u64 != size {
        return Err(Error::SizeMismatch { what: what.to_string(), expected: size, actual: bytes.len() as u64 });
    }
    Ok(())
}

fn malformed(reference: &str, what: &str, reason: impl std::fmt::Display) -> Error {
    Error::Malformed { what: format!("{what} of {reference}"), reason: reason.to_string() }
}

//! What the store reports: counters since it was opened, plus what is on disk now.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::Store;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) pulls: AtomicU64,
    pub(crate) pull_cache_hits: AtomicU64,
    pub(crate) pull_cache_misses: AtomicU64,
    pub(crate) layer_downloads: AtomicU64,
    pub(crate) layer_cache_hits: AtomicU64,
    pub(crate) bytes_downloaded: AtomicU64,
    pub(crate) rootfs_requests: AtomicU64,
    pub(crate) rootfs_misses: AtomicU64,
    pub(crate) gc_runs: AtomicU64,
    pub(crate) gc_layers_removed: AtomicU64,
    pub(crate) gc_bytes_freed: AtomicU64,
}

/// A snapshot of the store's metrics. Counters start at zero when the store is opened; `layers`,
/// `bytes_used`, `pinned_layers` and `root_filesystems` are read from disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// Completed pulls.
    pub pulls: u64,
    /// Pulls whose every layer was already stored (nothing downloaded).
    pub pull_cache_hits: u64,
    /// Pulls that downloaded at least one layer.
    pub pull_cache_misses: u64,
    /// Layers downloaded (layer cache misses).
    pub layer_downloads: u64,
    /// Layers a pull wanted and found stored.
    pub layer_cache_hits: u64,
    pub bytes_downloaded: u64,
    /// Root filesystem requests, and those refused because a layer was not stored.
    pub rootfs_requests: u64,
    pub rootfs_misses: u64,
    pub gc_runs: u64,
    pub gc_layers_removed: u64,
    pub gc_bytes_freed: u64,
    /// Stored layers and their unpacked bytes.
    pub layers: u64,
    pub bytes_used: u64,
    /// Layers named by a pin (a stack or image kept whatever the cache threshold).
    pub pinned_layers: u64,
    pub root_filesystems: u64,
}

impl Store {
    /// The metrics now. Reads every layer's record (one small file per layer).
    pub fn metrics(&self) -> Metrics {
        let c = self.counters();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (layers, bytes_used) = self.layers().map_or((0, 0), |all| {
            let bytes = all.iter().filter_map(|d| self.layer(d).ok()).map(|r| r.bytes).sum();
            (all.len() as u64, bytes)
        });
        Metrics {
            pulls: load(&c.pulls),
            pull_cache_hits: load(&c.pull_cache_hits),
            pull_cache_misses: load(&c.pull_cache_misses),
            layer_downloads: load(&c.layer_downloads),
            layer_cache_hits: load(&c.layer_cache_hits),
            bytes_downloaded: load(&c.bytes_downloaded),
            rootfs_requests: load(&c.rootfs_requests),
            rootfs_misses: load(&c.rootfs_misses),
            gc_runs: load(&c.gc_runs),
            gc_layers_removed: load(&c.gc_layers_removed),
            gc_bytes_freed: load(&c.gc_bytes_freed),
            layers,
            bytes_used,
            pinned_layers: self.pinned_layers().map_or(0, |p| p.len() as u64),
            root_filesystems: self.rootfs_ids().map_or(0, |ids| ids.len() as u64),
        }
    }
}

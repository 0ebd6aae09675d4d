//! Cache management: which layers are in use, when each was last used, and collecting the unused
//! ones least-recently-used first until the store is under its threshold.
//!
//! A layer is in use while a root filesystem's record names it, a pin names it
//! (`pins/<name>.json`: a stack or image kept whatever the threshold), or a pull or a root
//! filesystem being made holds a lease on it. Leases and `gc`'s choice are taken under one mutex,
//! so a pull either sees a layer gone (and downloads it) or keeps it. A layer's last use is the
//! modification time of its `layer.json`, set when a pull wants it and when a root filesystem
//! mounts it; layers used within the configured grace period are kept too, so the caller of a pull
//! has time to make its root filesystem.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::mounts::mounts_under;
use crate::store::{parse_json, remove_any};
use crate::{Digest, Error, Result, Stack, Store};

/// What one `gc` run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Removed layers, least recently used first.
    pub removed: Vec<Digest>,
    pub bytes_freed: u64,
    /// Bytes of stored layers after the run.
    pub bytes_used: u64,
    /// Bytes of layers kept because they are in use, pinned, leased or within the grace period.
    pub bytes_in_use: u64,
}

/// A named set of layers `gc` never removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub name: String,
    pub layers: Vec<Digest>,
}

/// Layers held by a pull or a root filesystem being made; released on drop.
pub(crate) struct Lease {
    store: Store,
    layers: Vec<Digest>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut leases = self.store.inner_leases().lock().expect("not poisoned");
        for layer in &self.layers {
            if let Some(n) = leases.get_mut(layer) {
                *n -= 1;
                if *n == 0 {
                    leases.remove(layer);
                }
            }
        }
    }
}

impl Store {
    /// Holds `layers` against `gc` until the lease is dropped.
    pub(crate) fn lease(&self, layers: &[Digest]) -> Lease {
        let mut leases = self.inner_leases().lock().expect("not poisoned");
        for layer in layers {
            *leases.entry(layer.clone()).or_default() += 1;
        }
        Lease { store: self.clone(), layers: layers.to_vec() }
    }

    /// Records that a layer was just used (its place in the LRU order). Best effort.
    pub(crate) fn touch_layer(&self, diff_id: &Digest) {
        let path = self.layer_home(diff_id).join("layer.json");
        if let Ok(file) = fs::File::options().write(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// Keeps `layers` (e.g. a stack's) whatever the cache threshold, under `name`. Replaces a pin
    /// of the same name. Every layer must be stored.
    pub fn pin(&self, name: &str, layers: &[Digest]) -> Result<()> {
        let path = self.pin_path(name)?;
        let _lease = self.lease(layers);
        if let Some(missing) = layers.iter().find(|l| !self.has_layer(l)) {
            return Err(Error::MissingLayer(missing.clone()));
        }
        let pin = Pin { name: name.to_string(), layers: layers.to_vec() };
        self.write_atomic(&path, &serde_json::to_vec_pretty(&pin).expect("pins serialise"))
    }

    /// Pins a stack's layers under its name.
    pub fn pin_stack(&self, stack: &Stack) -> Result<()> {
        self.pin(&pin_name(&stack.name), &stack.layers)
    }

    /// Removes a pin; an unknown name is fine.
    pub fn unpin(&self, name: &str) -> Result<()> {
        remove_any(&self.pin_path(name)?)
    }

    /// Every pin, by name.
    pub fn pins(&self) -> Result<Vec<Pin>> {
        let dir = self.root().join("pins");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let path = entry.map_err(Error::io(&dir))?.path();
            let bytes = fs::read(&path).map_err(Error::io(&path))?;
            out.push(parse_json::<Pin>(&path, &bytes)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(crate) fn pinned_layers(&self) -> Result<BTreeSet<Digest>> {
        Ok(self.pins()?.into_iter().flat_map(|p| p.layers).collect())
    }

    fn pin_path(&self, name: &str) -> Result<std::path::PathBuf> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            return Err(Error::BadPinName(name.to_string()));
        }
        Ok(self.root().join("pins").join(format!("{name}.json")))
    }

    /// Layers named by a root filesystem's record. A directory without a record is a create in
    /// progress (it holds a lease) or one that crashed before mounting its overlay (the record is
    /// written first); an overlay mounted without a record (made by an older version) has layers
    /// nobody wrote down, so `gc` refuses to guess.
    fn layers_of_root_filesystems(&self) -> Result<HashSet<Digest>> {
        let mut used = HashSet::new();
        for id in self.rootfs_ids()? {
            let mut record = self.rootfs_record(&id);
            if matches!(record, Err(Error::MissingRootfs(_))) {
                let merged = self.root().join("rootfs").join(&id).join("merged");
                if mounts_under(&merged)?.contains(&merged) {
                    // A create may have written its record and mounted since the first look.
                    record = self.rootfs_record(&id);
                    if matches!(record, Err(Error::MissingRootfs(_))) {
                        return Err(Error::Malformed {
                            what: format!("root filesystem {id}"),
                            reason: "mounted without a record of its layers; gc will not guess".into(),
                        });
                    }
                }
            }
            match record {
                Ok(record) => used.extend(record.layers),
                Err(Error::MissingRootfs(_)) => {} // a create in progress, or one that crashed before mounting
                Err(e) => return Err(e),
            }
        }
        Ok(used)
    }

    /// Removes unused layers, least recently used first, until stored layers take at most the
    /// configured threshold (every unused layer when there is none). Blocking.
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_to(self.config().cache_threshold.unwrap_or(0))
    }

    /// `gc` with an explicit threshold in bytes.
    pub fn gc_to(&self, threshold: u64) -> Result<GcReport> {
        let now = SystemTime::now();
        let grace = self.config().gc_grace;
        let mut report = GcReport::default();
        let mut doomed = Vec::new();
        {
            // Leases are taken under this lock, so nothing can start using a layer we pick.
            let leases = self.inner_leases().lock().expect("not poisoned");
            let mut in_use = self.layers_of_root_filesystems()?;
            in_use.extend(self.pinned_layers()?);
            in_use.extend(leases.keys().cloned());
            let mut candidates = Vec::new();
            for diff_id in self.layers()? {
                let record = match self.layer(&diff_id) {
                    Ok(r) => r,
                    Err(Error::MissingLayer(_)) => continue, // removed meanwhile
                    Err(e) => return Err(e),
                };
                report.bytes_used += record.bytes;
                let json = self.layer_home(&diff_id).join("layer.json");
                let used_at = fs::metadata(&json).and_then(|m| m.modified()).unwrap_or(now);
                let recent = now.duration_since(used_at).is_ok_and(|idle| idle < grace) || used_at > now;
                if in_use.contains(&diff_id) || recent {
                    report.bytes_in_use += record.bytes;
                } else {
                    candidates.push((used_at, diff_id, record.bytes));
                }
            }
            candidates.sort();
            for (_, diff_id, bytes) in candidates {
                if report.bytes_used <= threshold {
                    break;
                }
                // Out of sight at once (a rename); the slow removal happens after the lock.
                let grave = self.tmp_path("gc");
                let home = self.layer_home(&diff_id);
                match fs::rename(&home, &grave) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::Io { path: home, source: e }),
                }
                doomed.push(grave);
                report.bytes_used -= bytes;
                report.bytes_freed += bytes;
                report.removed.push(diff_id);
            }
        }
        for grave in doomed {
            self.remove_tree(&grave)?;
        }
        self.forget_images_without_layers(&report.removed)?;
        let c = self.counters();
        c.gc_runs.fetch_add(1, Ordering::Relaxed);
        c.gc_layers_removed.fetch_add(report.removed.len() as u64, Ordering::Relaxed);
        c.gc_bytes_freed.fetch_add(report.bytes_freed, Ordering::Relaxed);
        if !report.removed.is_empty() {
            tracing::info!(layers = report.removed.len(), bytes = report.bytes_freed, "collected unused layers");
        }
        Ok(report)
    }

    /// An image record naming a removed layer no longer describes something the store holds.
    fn forget_images_without_layers(&self, removed: &[Digest]) -> Result<()> {
        if removed.is_empty() {
            return Ok(());
        }
        for image in self.images()? {
            if image.layers.iter().any(|l| removed.contains(&l.diff_id)) {
                self.remove_image(&image.reference)?;
            }
        }
        Ok(())
    }
}

/// A stack's name as a pin name (image references have `/` and `:`).
fn pin_name(stack: &str) -> String {
    let clean: String =
        stack.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let clean = clean.trim_start_matches('.');
    if clean.len() <= 120 { format!("stack-{clean}") } else { format!("stack-{}", Digest::of(stack.as_bytes()).hex()) }
}

//! The progress hook: a pull reports what it does, so the CLI can draw bars (bytes so far / total).

use crate::Digest;

/// One step of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// The manifest is known: how many layers and how many compressed bytes in all.
    Resolved { manifest: Digest, layers: usize, total_bytes: u64 },
    /// The layer was already in the store (or another pull just fetched it).
    LayerCached { digest: Digest, size: u64 },
    /// Bytes of one layer downloaded so far (including a resumed prefix), out of `total`.
    LayerBytes { digest: Digest, done: u64, total: u64 },
    /// The layer is downloaded, verified, unpacked and stored.
    LayerStored { digest: Digest, size: u64 },
}

/// Receives pull events, possibly from several tasks at once.
pub trait Progress: Send + Sync {
    fn event(&self, event: PullEvent);
}

impl<F: Fn(PullEvent) + Send + Sync> Progress for F {
    fn event(&self, event: PullEvent) {
        self(event)
    }
}

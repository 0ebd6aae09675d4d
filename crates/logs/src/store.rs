//! The cache (log-cache's job): one ring of envelopes per source id, kept in timestamp order,
//! the oldest evicted once a source holds `max_per_source`, and the oldest of all sources once
//! the cache holds more than `max_bytes` (as log-cache prunes under memory pressure). `read`
//! answers with log-cache's semantics; `subscribe` hands out live subscriptions fed by `append`.
//!
//! Locking: the map of sources is behind a `RwLock` taken briefly; each source has its own
//! mutex held while an envelope is inserted and offered to that source's subscribers (so a
//! subscriber sees a source's envelopes in the order the ring got them). Offering never waits
//! on a reader.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::Error;
use crate::envelope::{Envelope, EnvelopeType, now_nanos};
use crate::subscribe::{Filter, Mailbox, Sources, Subscription};

/// log-cache's largest `limit`.
pub const MAX_LIMIT: u32 = 1000;
/// log-cache's `limit` when none is given.
pub const DEFAULT_LIMIT: u32 = 100;

/// Sizes of the cache.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Envelopes kept per source id; the oldest go first (log-cache's `max_per_source`).
    pub max_per_source: usize,
    /// Envelopes a live subscriber may have waiting before its oldest are dropped.
    pub subscriber_buffer: usize,
    /// Roughly how many bytes all rings may hold together; past it the oldest envelopes of
    /// all sources go first, down to 95% of it.
    pub max_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        // 100,000 per source is log-cache's own default: a follower that walks the cache
        // (cf logs) needs the ring to span more than its 2 s hold-back even for chatty apps.
        StoreConfig { max_per_source: 100_000, subscriber_buffer: 10_000, max_bytes: 256 << 20 }
    }
}

/// A read as log-cache's `GET /api/v1/read/{source_id}` takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadRequest {
    /// Inclusive lower bound (nanoseconds since the epoch; may be negative).
    pub start_time: i64,
    /// Exclusive upper bound; `None` (or 0, as in log-cache) means now.
    pub end_time: Option<i64>,
    /// Wanted kinds; empty means any.
    pub envelope_types: Vec<EnvelopeType>,
    /// At most this many (1..=1000); `None` (or 0) means 100.
    pub limit: Option<i64>,
    /// Newest first (and the newest `limit` of the window) instead of oldest first.
    pub descending: bool,
}

/// What `meta` knows of one source (log-cache's `MetaInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaInfo {
    pub count: u64,
    pub expired: u64,
    pub oldest_timestamp: i64,
    pub newest_timestamp: i64,
}

/// The cache; cheap to clone (all clones share it).
#[derive(Clone, Default)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Default)]
pub(crate) struct Inner {
    config: StoreConfig,
    sources: RwLock<HashMap<String, Arc<Source>>>,
    firehose: Mutex<Vec<Arc<Mailbox>>>,
    bytes: AtomicUsize,
    pruning: Mutex<()>,
}

#[derive(Default)]
struct Source {
    state: Mutex<SourceState>,
}

#[derive(Default)]
struct SourceState {
    ring: VecDeque<Arc<Envelope>>,
    expired: u64,
    subscribers: Vec<Arc<Mailbox>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    pub fn new(config: StoreConfig) -> Result<Store, Error> {
        if config.max_per_source == 0 || config.subscriber_buffer == 0 || config.max_bytes == 0 {
            return Err(Error::InvalidConfig(
                "max_per_source, subscriber_buffer and max_bytes must be at least 1".into(),
            ));
        }
        Ok(Store { inner: Arc::new(Inner { config, ..Inner::default() }) })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Stores an envelope under its source id and offers it to live subscribers.
    pub fn append(&self, envelope: Envelope) -> Result<(), Error> {
        if envelope.source_id.is_empty() {
            return Err(Error::InvalidEnvelope("source_id is empty".into()));
        }
        let envelope = Arc::new(envelope);
        let max = self.inner.config.max_per_source;
        let size = envelope.approximate_size();
        self.inner.with_source(&envelope.source_id, |state| {
            let ts = envelope.timestamp;
            if state.ring.back().is_none_or(|last| last.timestamp <= ts) {
                state.ring.push_back(Arc::clone(&envelope));
            } else {
                let at = state.ring.partition_point(|e| e.timestamp <= ts);
                state.ring.insert(at, Arc::clone(&envelope));
            }
            let mut freed = 0;
            while state.ring.len() > max {
                if let Some(old) = state.ring.pop_front() {
                    freed += old.approximate_size();
                }
                state.expired += 1;
            }
            self.inner.bytes.fetch_add(size, Ordering::Relaxed);
            self.inner.bytes.fetch_sub(freed, Ordering::Relaxed);
            for mailbox in &state.subscribers {
                mailbox.offer(&envelope);
            }
        });
        for mailbox in lock(&self.inner.firehose).iter() {
            mailbox.offer(&envelope);
        }
        if self.inner.bytes.load(Ordering::Relaxed) > self.inner.config.max_bytes {
            self.inner.prune();
        }
        Ok(())
    }

    /// Envelopes of one source in `[start_time, end_time)`, as log-cache answers: oldest first
    /// from the start of the window, or with `descending` newest first from its end.
    pub fn read(&self, source_id: &str, req: &ReadRequest) -> Result<Vec<Arc<Envelope>>, Error> {
        let end = match req.end_time {
            Some(end) if end != 0 => {
                if req.start_time > end {
                    return Err(Error::InvalidRequest(format!(
                        "StartTime ({}) must be before EndTime ({end})",
                        req.start_time
                    )));
                }
                end
            }
            _ => now_nanos(),
        };
        let limit = match req.limit {
            Some(l) if l > i64::from(MAX_LIMIT) => {
                return Err(Error::InvalidRequest(format!("Limit ({l}) must be {MAX_LIMIT} or less")));
            }
            Some(l) if l < 0 => return Err(Error::InvalidRequest(format!("Limit ({l}) must be greater than zero"))),
            Some(0) | None => DEFAULT_LIMIT as usize,
            Some(l) => l as usize,
        };
        let Some(source) = self.inner.sources.read().unwrap_or_else(|p| p.into_inner()).get(source_id).cloned() else {
            return Ok(Vec::new());
        };
        let state = lock(&source.state);
        let lo = state.ring.partition_point(|e| e.timestamp < req.start_time);
        let hi = state.ring.partition_point(|e| e.timestamp < end).max(lo);
        let wanted =
            |e: &&Arc<Envelope>| req.envelope_types.is_empty() || req.envelope_types.contains(&e.envelope_type());
        let window = state.ring.range(lo..hi);
        let out = if req.descending {
            window.rev().filter(wanted).take(limit).cloned().collect()
        } else {
            window.filter(wanted).take(limit).cloned().collect()
        };
        Ok(out)
    }

    /// Per source: how many envelopes it holds, how many were evicted, the oldest and newest.
    pub fn meta(&self) -> Vec<(String, MetaInfo)> {
        let sources = self.inner.sources.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(String, MetaInfo)> = sources
            .iter()
            .filter_map(|(id, source)| {
                let state = lock(&source.state);
                let (first, last) = (state.ring.front()?, state.ring.back()?);
                let info = MetaInfo {
                    count: state.ring.len() as u64,
                    expired: state.expired,
                    oldest_timestamp: first.timestamp,
                    newest_timestamp: last.timestamp,
                };
                Some((id.clone(), info))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A live subscription to some sources (or all of them) from now on.
    pub fn subscribe(&self, sources: Sources, filter: Filter) -> Result<Subscription, Error> {
        if let Sources::Some(ids) = &sources {
            if ids.is_empty() {
                return Err(Error::InvalidRequest("a subscription needs at least one source id".into()));
            }
            if ids.iter().any(|id| id.is_empty()) {
                return Err(Error::InvalidRequest("source ids must not be empty".into()));
            }
        }
        let mailbox = Arc::new(Mailbox::new(filter, self.inner.config.subscriber_buffer));
        match &sources {
            Sources::Some(ids) => {
                let mut ids = ids.clone();
                ids.sort();
                ids.dedup();
                for id in &ids {
                    self.inner.with_source(id, |state| state.subscribers.push(Arc::clone(&mailbox)));
                }
            }
            Sources::All => lock(&self.inner.firehose).push(Arc::clone(&mailbox)),
        }
        Ok(Subscription { mailbox, store: Arc::downgrade(&self.inner), sources })
    }

    /// Live subscribers, counted once per source they follow (tests check for leftovers).
    pub fn subscriber_count(&self) -> usize {
        let sources = self.inner.sources.read().unwrap_or_else(|p| p.into_inner());
        let per_source: usize = sources.values().map(|s| lock(&s.state).subscribers.len()).sum();
        per_source + lock(&self.inner.firehose).len()
    }

    /// Roughly how many bytes the rings hold.
    pub fn bytes(&self) -> usize {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Source ids the store keeps anything for (envelopes or subscribers).
    pub fn source_count(&self) -> usize {
        self.inner.sources.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Inner {
    /// Runs `f` on a source's state (made if new) while the map stays locked, so `unsubscribe`
    /// cannot drop the source in between (the lock order is always map, then source).
    fn with_source<R>(&self, id: &str, f: impl FnOnce(&mut SourceState) -> R) -> R {
        {
            let sources = self.sources.read().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = sources.get(id) {
                return f(&mut lock(&s.state));
            }
        }
        let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
        let source = sources.entry(id.to_string()).or_default();
        f(&mut lock(&source.state))
    }

    /// Evicts the oldest envelopes of all sources until the rings hold at most 95% of
    /// `max_bytes`; sources left with nothing are forgotten. One pruner at a time.
    fn prune(&self) {
        let Ok(_pruning) = self.pruning.try_lock() else { return };
        let target = self.config.max_bytes / 20 * 19;
        while self.bytes.load(Ordering::Relaxed) > target {
            let sources = self.sources.read().unwrap_or_else(|p| p.into_inner());
            // The source whose oldest envelope is the oldest of all, and the runner-up's.
            let mut fronts: Vec<(i64, &Arc<Source>)> =
                sources.values().filter_map(|s| lock(&s.state).ring.front().map(|e| (e.timestamp, s))).collect();
            if fronts.is_empty() {
                break;
            }
            fronts.sort_by_key(|(ts, _)| *ts);
            let next_oldest = fronts.get(1).map_or(i64::MAX, |(ts, _)| *ts);
            let mut state = lock(&fronts[0].1.state);
            while self.bytes.load(Ordering::Relaxed) > target
                && let Some(front) = state.ring.front()
                && front.timestamp <= next_oldest
            {
                let size = front.approximate_size();
                state.ring.pop_front();
                state.expired += 1;
                self.bytes.fetch_sub(size, Ordering::Relaxed);
            }
        }
        let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
        sources.retain(|_, s| {
            let state = lock(&s.state);
            !(state.ring.is_empty() && state.subscribers.is_empty())
        });
    }

    pub(crate) fn unsubscribe(&self, mailbox: &Arc<Mailbox>, sources: &Sources) {
        match sources {
            Sources::All => lock(&self.firehose).retain(|m| !Arc::ptr_eq(m, mailbox)),
            Sources::Some(ids) => {
                let mut map = self.sources.write().unwrap_or_else(|p| p.into_inner());
                for id in ids {
                    let Some(source) = map.get(id) else { continue };
                    let empty = {
                        let mut state = lock(&source.state);
                        state.subscribers.retain(|m| !Arc::ptr_eq(m, mailbox));
                        state.subscribers.is_empty() && state.ring.is_empty()
                    };
                    if empty {
                        map.remove(id);
                    }
                }
            }
        }
    }
}

//! Live subscriptions: each subscriber has its own bounded mailbox, filled by `Store::append`
//! without ever waiting on a reader. A mailbox that is full drops its *oldest* envelope (as
//! Loggregator's diodes do) and counts the loss per source, so a slow reader loses only its own
//! envelopes — never anyone else's — and learns how many it missed before its next envelopes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use crate::envelope::{Envelope, EnvelopeType, Message};
use crate::store::Inner;

/// Which envelopes a subscriber wants (the RLP gateway's selectors, for one set of sources).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Wanted kinds; empty means every kind.
    pub types: BTreeSet<EnvelopeType>,
    /// If not empty, counters must have one of these names.
    pub counter_names: Vec<String>,
    /// If not empty, a gauge must carry every name of at least one of these sets.
    pub gauge_names: Vec<Vec<String>>,
}

impl Filter {
    /// Every envelope of these kinds (all kinds if `types` is empty).
    pub fn types(types: impl IntoIterator<Item = EnvelopeType>) -> Filter {
        Filter { types: types.into_iter().collect(), ..Filter::default() }
    }

    pub fn matches(&self, e: &Envelope) -> bool {
        if !self.types.is_empty() && !self.types.contains(&e.envelope_type()) {
            return false;
        }
        match &e.message {
            Message::Counter(c) => self.counter_names.is_empty() || self.counter_names.contains(&c.name),
            Message::Gauge(g) => {
                self.gauge_names.is_empty()
                    || self.gauge_names.iter().any(|set| set.iter().all(|n| g.metrics.contains_key(n)))
            }
            Message::Log(_) | Message::Timer(_) | Message::Event(_) => true,
        }
    }
}

/// What a subscriber receives: how many envelopes it lost per source since its last batch
/// (older than the envelopes that follow), then the envelopes in the order they were appended.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub missed: Vec<(String, u64)>,
    pub envelopes: Vec<Arc<Envelope>>,
}

impl Batch {
    pub fn missed_total(&self) -> u64 {
        self.missed.iter().map(|(_, n)| n).sum()
    }
}

pub(crate) struct Mailbox {
    filter: Filter,
    capacity: usize,
    state: Mutex<MailboxState>,
    notify: Notify,
}

#[derive(Default)]
struct MailboxState {
    queue: VecDeque<Arc<Envelope>>,
    missed: BTreeMap<String, u64>,
}

impl Mailbox {
    pub(crate) fn new(filter: Filter, capacity: usize) -> Mailbox {
        Mailbox { filter, capacity: capacity.max(1), state: Mutex::default(), notify: Notify::new() }
    }

    /// Never blocks on the reader: a full mailbox drops its oldest envelope and counts it.
    pub(crate) fn offer(&self, e: &Arc<Envelope>) {
        if !self.filter.matches(e) {
            return;
        }
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.queue.len() >= self.capacity
                && let Some(old) = state.queue.pop_front()
            {
                *state.missed.entry(old.source_id.clone()).or_default() += 1;
            }
            state.queue.push_back(Arc::clone(e));
        }
        self.notify.notify_one();
    }

    fn take(&self, max: usize) -> Option<Batch> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.queue.is_empty() && state.missed.is_empty() {
            return None;
        }
        let missed = std::mem::take(&mut state.missed).into_iter().collect();
        let n = state.queue.len().min(max.max(1));
        let envelopes = state.queue.drain(..n).collect();
        Some(Batch { missed, envelopes })
    }
}

/// Which sources a subscription follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// These source ids (at least one).
    Some(Vec<String>),
    /// Every source (the firehose; for admins).
    All,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) store: Weak<Inner>,
    pub(crate) sources: Sources,
}

impl Subscription {
    /// Waits for the next envelopes (at most `max`) or news of missed ones.
    pub async fn next_batch(&mut self, max: usize) -> Batch {
        loop {
            let notified = self.mailbox.notify.notified();
            if let Some(batch) = self.mailbox.take(max) {
                return batch;
            }
            notified.await;
        }
    }

    /// What is waiting now, without waiting.
    pub fn try_next_batch(&mut self, max: usize) -> Option<Batch> {
        self.mailbox.take(max)
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.store.upgrade() {
            inner.unsubscribe(&self.mailbox, &self.sources);
        }
    }
}

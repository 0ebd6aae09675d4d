//! The event stream: every change the store commits, with what it was before and after.
//! Subscribers (the router, logs, the API, cells) read a `tokio::sync::broadcast` channel;
//! one that falls behind by more than the channel holds is told how many it missed.

use tokio::sync::broadcast;

use crate::actual::ActualLrp;
use crate::cell::Cell;
use crate::model::DesiredLrp;
use crate::task::Task;

/// One committed change.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    DesiredCreated(DesiredLrp),
    DesiredChanged { before: DesiredLrp, after: DesiredLrp },
    DesiredRemoved(DesiredLrp),
    ActualCreated(ActualLrp),
    ActualChanged { before: ActualLrp, after: ActualLrp },
    ActualRemoved(ActualLrp),
    TaskCreated(Task),
    TaskChanged { before: Task, after: Task },
    TaskRemoved(Task),
    CellRegistered(Cell),
    CellChanged { before: Cell, after: Cell },
    CellRemoved(Cell),
}

/// How many events a slow subscriber may lag behind before it misses some.
pub const CAPACITY: usize = 4096;

/// The sending side; cheap to clone.
#[derive(Clone, Debug)]
pub struct Events(broadcast::Sender<Event>);

impl Default for Events {
    fn default() -> Self {
        Events(broadcast::channel(CAPACITY).0)
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }

    /// Publishes committed changes in order; having no subscriber is fine.
    pub fn publish(&self, events: Vec<Event>) {
        for e in events {
            let _ = self.0.send(e);
        }
    }
}

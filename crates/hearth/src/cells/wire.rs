//! What a cell on another machine and the server say to each other (JSON): the cell's
//! scheduler calls and their answers, the scheduler's errors, and shipped log envelopes.

use std::collections::BTreeMap;

use base64::Engine;
use hearth_scheduler::actual::ActualLrpKey;
use hearth_scheduler::{ActualLrp, ActualLrpEvent, Cell, CellEvent, DesiredLrp, Error, Task, TaskEvent};
use serde::{Deserialize, Serialize};

/// A cell's request of the scheduler ([`hearth_cell::SchedulerLink`], one variant per call).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    RegisterCell { cell: Cell },
    ChangeCell { id: String, event: CellEvent },
    DesiredLrp { process_guid: String },
    ActualLrp { key: ActualLrpKey },
    ActualLrpsOnCell { cell_id: String },
    ChangeActual { key: ActualLrpKey, event: ActualLrpEventWire },
    Task { guid: String },
    TasksOnCell { cell_id: String },
    ChangeTask { guid: String, event: TaskEvent },
}

/// `ActualLrpEvent` on the wire (the scheduler's own type has no serde form).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ActualLrpEventWire {
    Claim {
        instance: hearth_scheduler::actual::Instance,
    },
    Start {
        instance: hearth_scheduler::actual::Instance,
        address: String,
        ports: Vec<hearth_scheduler::actual::PortMapping>,
        preferred_address: hearth_scheduler::PreferredAddress,
    },
    Crash {
        instance: hearth_scheduler::actual::Instance,
        reason: String,
    },
    Remove,
    /// Events only the scheduler makes (a cell sending one is refused).
    Other {
        name: String,
    },
}

impl From<ActualLrpEvent> for ActualLrpEventWire {
    fn from(e: ActualLrpEvent) -> Self {
        match e {
            ActualLrpEvent::Claim(instance) => ActualLrpEventWire::Claim { instance },
            ActualLrpEvent::Start { instance, address, ports, preferred_address } => {
                ActualLrpEventWire::Start { instance, address, ports, preferred_address }
            }
            ActualLrpEvent::Crash { instance, reason } => ActualLrpEventWire::Crash { instance, reason },
            ActualLrpEvent::Remove => ActualLrpEventWire::Remove,
            other => ActualLrpEventWire::Other { name: format!("{other:?}") },
        }
    }
}

/// A call's answer: the value, or the scheduler's error by kind.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Cell(Cell),
    Desired(Option<DesiredLrp>),
    Actual(Option<ActualLrp>),
    Actuals(Vec<ActualLrp>),
    Task(Option<Task>),
    Tasks(Vec<Task>),
    Error { kind: String, message: String, what: String, expected: i64 },
}

/// The error kinds a cell acts on, kept across the wire; others arrive as `Invalid`.
pub fn error_reply(e: &Error) -> Reply {
    let (kind, what, expected) = match e {
        Error::NotFound { what } => ("not_found", what.clone(), 0),
        Error::Stale { what, expected } => ("stale", what.clone(), *expected),
        Error::TaskTransition { guid, .. } => ("task_transition", guid.clone(), 0),
        Error::ActualTransition { key, .. } => ("actual_transition", key.clone(), 0),
        Error::InstanceMismatch { key, .. } => ("instance_mismatch", key.clone(), 0),
        _ => ("other", String::new(), 0),
    };
    Reply::Error { kind: kind.into(), message: e.to_string(), what, expected }
}

/// The scheduler error a reply stands for.
pub fn reply_error(kind: &str, message: String, what: String, expected: i64) -> Error {
    match kind {
        "not_found" => Error::NotFound { what },
        "stale" => Error::Stale { what, expected },
        "task_transition" => Error::TaskTransition { guid: what, state: "another state", event: "change" },
        "actual_transition" => Error::ActualTransition { key: what, state: "another state", event: "change" },
        _ => Error::Invalid { what: "request to the scheduler".into(), why: message },
    }
}

/// A log line or gauge shipped from a cell (other envelope kinds stay on the cell).
#[derive(Debug, Serialize, Deserialize)]
pub struct Shipped {
    pub timestamp: i64,
    pub source_id: String,
    pub instance_id: String,
    pub tags: BTreeMap<String, String>,
    /// Base64 of a log line's payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<bool>,
    /// A gauge's metrics: name → (unit, value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gauge: Option<BTreeMap<String, (String, f64)>>,
}

impl Shipped {
    pub fn from_envelope(e: &hearth_logs::Envelope) -> Option<Shipped> {
        let (log, stderr, gauge) = match &e.message {
            hearth_logs::Message::Log(l) => (
                Some(base64::engine::general_purpose::STANDARD.encode(&l.payload)),
                Some(l.stream == hearth_logs::LogStream::Err),
                None,
            ),
            hearth_logs::Message::Gauge(g) => {
                (None, None, Some(g.metrics.iter().map(|(k, v)| (k.clone(), (v.unit.clone(), v.value))).collect()))
            }
            _ => return None,
        };
        Some(Shipped {
            timestamp: e.timestamp,
            source_id: e.source_id.clone(),
            instance_id: e.instance_id.clone(),
            tags: (*e.tags).clone(),
            log,
            stderr,
            gauge,
        })
    }

    pub fn into_envelope(self) -> Option<hearth_logs::Envelope> {
        let mut envelope = if let Some(log) = &self.log {
            let payload = base64::engine::general_purpose::STANDARD.decode(log).ok()?;
            let stream =
                if self.stderr == Some(true) { hearth_logs::LogStream::Err } else { hearth_logs::LogStream::Out };
            hearth_logs::Envelope::log(&self.source_id, &self.instance_id, stream, payload)
        } else {
            let gauge = self.gauge.as_ref()?;
            let metrics: Vec<(&str, &str, f64)> =
                gauge.iter().map(|(k, (unit, value))| (k.as_str(), unit.as_str(), *value)).collect();
            hearth_logs::Envelope::gauge(&self.source_id, &self.instance_id, &metrics)
        };
        for (k, v) in &self.tags {
            envelope = envelope.with_tag(k, v);
        }
        Some(envelope.at(self.timestamp))
    }
}

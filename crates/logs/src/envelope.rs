//! The Loggregator v2 envelope as a plain Rust value: one timestamped message from one source
//! (an app guid, or a platform component) and instance, with string tags and exactly one of the
//! five kinds (log, counter, gauge, timer, event). The JSON rendering lives in `wire`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Tag keys Cloud Foundry sets on app envelopes.
pub mod tag {
    /// Who produced the envelope: `APP/PROC/WEB`, `STG`, `RTR`, `API`, `CELL`, `LGR`, ...
    pub const SOURCE_TYPE: &str = "source_type";
    pub const APP_ID: &str = "app_id";
    pub const APP_NAME: &str = "app_name";
    pub const SPACE_ID: &str = "space_id";
    pub const SPACE_NAME: &str = "space_name";
    pub const ORGANIZATION_ID: &str = "organization_id";
    pub const ORGANIZATION_NAME: &str = "organization_name";
    pub const PROCESS_ID: &str = "process_id";
    pub const PROCESS_TYPE: &str = "process_type";
    pub const PROCESS_INSTANCE_ID: &str = "process_instance_id";
    pub const INSTANCE_ID: &str = "instance_id";
    pub const SOURCE_ID: &str = "source_id";
}

/// Source types Cloud Foundry puts in the `source_type` tag.
pub mod source_type {
    /// An app's web process (`APP/PROC/<TYPE>` for other process types: see [`app_process`]).
    pub const APP_WEB: &str = "APP/PROC/WEB";
    pub const STAGING: &str = "STG";
    pub const ROUTER: &str = "RTR";
    pub const API: &str = "API";
    pub const CELL: &str = "CELL";
    /// The logging system itself (e.g. a reader that fell behind and lost envelopes).
    pub const LOGGREGATOR: &str = "LGR";

    /// `APP/PROC/WEB` for `web`, `APP/PROC/WORKER` for `worker`, ...
    pub fn app_process(process_type: &str) -> String {
        format!("APP/PROC/{}", process_type.to_uppercase())
    }
}

/// An envelope's tags, shared: the lines of one stream all carry the same map.
pub type Tags = Arc<BTreeMap<String, String>>;

/// One envelope. `timestamp` is nanoseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub timestamp: i64,
    pub source_id: String,
    pub instance_id: String,
    pub tags: Tags,
    pub message: Message,
}

/// The one kind of data an envelope carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Log(Log),
    Counter(Counter),
    Gauge(Gauge),
    Timer(Timer),
    Event(Event),
}

/// A line of output; the payload is bytes (apps may write anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub payload: Vec<u8>,
    pub stream: LogStream,
}

/// Which of the process's streams a log line came from (`OUT` or `ERR` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    Out,
    Err,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub name: String,
    pub delta: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gauge {
    pub metrics: BTreeMap<String, GaugeValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GaugeValue {
    pub unit: String,
    pub value: f64,
}

/// A duration between two instants (nanoseconds since the epoch), e.g. an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub name: String,
    pub start: i64,
    pub stop: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub title: String,
    pub body: String,
}

/// The kinds log-cache's `envelope_types` selects (`ANY` selects all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnvelopeType {
    Log,
    Counter,
    Gauge,
    Timer,
    Event,
}

impl EnvelopeType {
    pub const ALL: [EnvelopeType; 5] =
        [EnvelopeType::Log, EnvelopeType::Counter, EnvelopeType::Gauge, EnvelopeType::Timer, EnvelopeType::Event];

    /// log-cache's enum name (`LOG`, `COUNTER`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EnvelopeType::Log => "LOG",
            EnvelopeType::Counter => "COUNTER",
            EnvelopeType::Gauge => "GAUGE",
            EnvelopeType::Timer => "TIMER",
            EnvelopeType::Event => "EVENT",
        }
    }
}

impl Message {
    pub fn envelope_type(&self) -> EnvelopeType {
        match self {
            Message::Log(_) => EnvelopeType::Log,
            Message::Counter(_) => EnvelopeType::Counter,
            Message::Gauge(_) => EnvelopeType::Gauge,
            Message::Timer(_) => EnvelopeType::Timer,
            Message::Event(_) => EnvelopeType::Event,
        }
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

impl Envelope {
    /// A log envelope stamped now.
    pub fn log(source_id: &str, instance_id: &str, stream: LogStream, payload: impl Into<Vec<u8>>) -> Envelope {
        Envelope {
            timestamp: now_nanos(),
            source_id: source_id.to_string(),
            instance_id: instance_id.to_string(),
            tags: Tags::default(),
            message: Message::Log(Log { payload: payload.into(), stream }),
        }
    }

    /// A gauge envelope stamped now, from `(name, unit, value)` triples.
    pub fn gauge(source_id: &str, instance_id: &str, metrics: &[(&str, &str, f64)]) -> Envelope {
        let metrics = metrics
            .iter()
            .map(|(name, unit, value)| (name.to_string(), GaugeValue { unit: unit.to_string(), value: *value }))
            .collect();
        Envelope {
            timestamp: now_nanos(),
            source_id: source_id.to_string(),
            instance_id: instance_id.to_string(),
            tags: Tags::default(),
            message: Message::Gauge(Gauge { metrics }),
        }
    }

    /// Builder: set (or replace) one tag.
    pub fn with_tag(mut self, key: &str, value: &str) -> Envelope {
        Arc::make_mut(&mut self.tags).insert(key.to_string(), value.to_string());
        self
    }

    /// Builder: set the timestamp (nanoseconds since the epoch).
    pub fn at(mut self, timestamp: i64) -> Envelope {
        self.timestamp = timestamp;
        self
    }

    pub fn envelope_type(&self) -> EnvelopeType {
        self.message.envelope_type()
    }

    /// The log line's payload, if this is a log envelope.
    pub fn log_payload(&self) -> Option<&[u8]> {
        match &self.message {
            Message::Log(log) => Some(&log.payload),
            Message::Counter(_) | Message::Gauge(_) | Message::Timer(_) | Message::Event(_) => None,
        }
    }

    /// A rough count of the bytes this envelope holds (for memory accounting).
    pub fn approximate_size(&self) -> usize {
        let tags: usize = self.tags.iter().map(|(k, v)| k.len() + v.len() + 48).sum();
        let body = match &self.message {
            Message::Log(log) => log.payload.len(),
            Message::Counter(c) => c.name.len() + 16,
            Message::Gauge(g) => g.metrics.iter().map(|(k, v)| k.len() + v.unit.len() + 56).sum(),
            Message::Timer(t) => t.name.len() + 16,
            Message::Event(e) => e.title.len() + e.body.len(),
        };
        std::mem::size_of::<Envelope>() + self.source_id.len() + self.instance_id.len() + tags + body
    }
}

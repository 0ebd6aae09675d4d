//! Envelopes in JSON exactly as Cloud Foundry's log endpoints write them: protobuf's canonical
//! JSON mapping with every field emitted (64-bit integers as strings, `bytes` as standard
//! base64, enums by name, `deprecated_tags` as `{}`). log-cache's gateway keeps the proto field
//! names (`source_id`); the RLP gateway's stream uses the lowerCamelCase JSON names
//! (`sourceId`). The only module that knows the wire format of envelopes.

use std::fmt::Display;

use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::envelope::{Envelope, GaugeValue, LogStream, Message};

/// Which field names to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `source_id`, `instance_id`, `deprecated_tags` (log-cache's `/api/v1/read`).
    Proto,
    /// `sourceId`, `instanceId`, `deprecatedTags` (the RLP gateway's `/v2/read`).
    Camel,
}

/// An envelope ready to serialize in one naming (written straight to the output, no
/// intermediate JSON tree).
pub struct Wire<'a> {
    pub envelope: &'a Envelope,
    pub naming: Naming,
}

/// A value written as a JSON string through `Display` (64-bit integers, base64).
struct AsStr<T>(T);

impl<T: Display> Serialize for AsStr<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

struct Empty;

impl Serialize for Empty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

/// Serializes a fixed list of `(key, value)` entries as one JSON object.
macro_rules! object {
    ($s:expr, $($k:expr => $v:expr),+ $(,)?) => {{
        let mut m = $s.serialize_map(None)?;
        $(m.serialize_entry($k, $v)?;)+
        m.end()
    }};
}

struct Metrics<'a>(&'a std::collections::BTreeMap<String, GaugeValue>);

impl Serialize for Metrics<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, v) in self.0 {
            m.serialize_entry(name, &MetricValue(v))?;
        }
        m.end()
    }
}

struct MetricValue<'a>(&'a GaugeValue);

impl Serialize for MetricValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        object!(s, "unit" => &self.0.unit, "value" => &double(self.0.value))
    }
}

struct Body<'a>(&'a Message);

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Message::Log(log) => {
                let stream = match log.stream {
                    LogStream::Out => "OUT",
                    LogStream::Err => "ERR",
                };
                object!(s, "payload" => &AsStr(Base64Display::new(&log.payload, &STANDARD)), "type" => stream)
            }
            Message::Counter(c) => {
                object!(s, "name" => &c.name, "delta" => &AsStr(c.delta), "total" => &AsStr(c.total))
            }
            Message::Gauge(g) => object!(s, "metrics" => &Metrics(&g.metrics)),
            Message::Timer(t) => object!(s, "name" => &t.name, "start" => &AsStr(t.start), "stop" => &AsStr(t.stop)),
            Message::Event(e) => object!(s, "title" => &e.title, "body" => &e.body),
        }
    }
}

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.envelope;
        let (source_id, instance_id, deprecated_tags) = match self.naming {
            Naming::Proto => ("source_id", "instance_id", "deprecated_tags"),
            Naming::Camel => ("sourceId", "instanceId", "deprecatedTags"),
        };
        let kind = match &e.message {
            Message::Log(_) => "log",
            Message::Counter(_) => "counter",
            Message::Gauge(_) => "gauge",
            Message::Timer(_) => "timer",
            Message::Event(_) => "event",
        };
        object!(s,
            "timestamp" => &AsStr(e.timestamp),
            source_id => &e.source_id,
            instance_id => &e.instance_id,
            deprecated_tags => &Empty,
            "tags" => &*e.tags,
            kind => &Body(&e.message),
        )
    }
}

/// One envelope as a JSON value (tests, callers that want a tree).
pub fn envelope(e: &Envelope, naming: Naming) -> Value {
    serde_json::to_value(Wire { envelope: e, naming }).expect("envelopes always serialize")
}

/// Appends `"batch":[...]` (without braces) to `out`.
fn write_batch<'a>(out: &mut Vec<u8>, envelopes: impl IntoIterator<Item = &'a Envelope>, naming: Naming) {
    out.extend_from_slice(b"\"batch\":[");
    for (i, e) in envelopes.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, &Wire { envelope: e, naming }).expect("envelopes always serialize");
    }
    out.push(b']');
}

/// An `EnvelopeBatch`, `{"batch":[...]}`, as bytes.
pub fn batch_bytes<'a>(envelopes: impl IntoIterator<Item = &'a Envelope>, naming: Naming) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    write_batch(&mut out, envelopes, naming);
    out.push(b'}');
    out
}

/// log-cache's `ReadResponse`, `{"envelopes":{"batch":[...]}}`, as bytes.
pub fn read_response_bytes<'a>(envelopes: impl IntoIterator<Item = &'a Envelope>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"envelopes\":{");
    write_batch(&mut out, envelopes, Naming::Proto);
    out.extend_from_slice(b"}}");
    out
}

/// An `EnvelopeBatch` as a JSON value.
pub fn batch<'a>(envelopes: impl IntoIterator<Item = &'a Envelope>, naming: Naming) -> Value {
    serde_json::from_slice(&batch_bytes(envelopes, naming)).expect("a batch is JSON")
}

/// log-cache's `ReadResponse` as a JSON value.
pub fn read_response<'a>(envelopes: impl IntoIterator<Item = &'a Envelope>) -> Value {
    serde_json::from_slice(&read_response_bytes(envelopes)).expect("a read response is JSON")
}

/// A protobuf `double` in canonical JSON: whole numbers without a fraction (`1024`, not
/// `1024.0`), non-finite values as the strings `NaN`, `Infinity`, `-Infinity`.
fn double(v: f64) -> Value {
    if v.is_nan() {
        Value::String("NaN".into())
    } else if v.is_infinite() {
        Value::String(if v > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Counter, Event, Timer};
    use serde_json::json;

    #[test]
    fn a_log_envelope_renders_as_log_cache_writes_it() {
        let e = Envelope::log("app-guid", "0", LogStream::Err, "hi\u{0}\u{ff}")
            .at(1_700_000_000_123_456_789)
            .with_tag("source_type", "APP/PROC/WEB");
        let v = envelope(&e, Naming::Proto);
        assert_eq!(
            v,
            json!({
                "timestamp": "1700000000123456789",
                "source_id": "app-guid",
                "instance_id": "0",
                "deprecated_tags": {},
                "tags": { "source_type": "APP/PROC/WEB" },
                "log": { "payload": "aGkAw78=", "type": "ERR" }
            })
        );
        let camel = envelope(&e, Naming::Camel);
        assert_eq!(camel["sourceId"], "app-guid");
        assert_eq!(camel["instanceId"], "0");
        assert!(camel.get("source_id").is_none());
    }

    #[test]
    fn gauges_counters_timers_and_events_use_protobuf_json() {
        let g = Envelope::gauge("s", "1", &[("memory", "bytes", 1024.0), ("cpu", "percentage", 12.5)]).at(5);
        let v = envelope(&g, Naming::Proto);
        assert_eq!(v["gauge"]["metrics"]["memory"], json!({ "unit": "bytes", "value": 1024 }));
        assert_eq!(v["gauge"]["metrics"]["cpu"], json!({ "unit": "percentage", "value": 12.5 }));
        assert_eq!(v["timestamp"], "5");

        let mut c = g.clone();
        c.message = Message::Counter(Counter { name: "requests".into(), delta: 2, total: u64::MAX });
        assert_eq!(
            envelope(&c, Naming::Proto)["counter"],
            json!({ "name": "requests", "delta": "2", "total": "18446744073709551615" })
        );
        c.message = Message::Timer(Timer { name: "http".into(), start: 1, stop: -2 });
        assert_eq!(envelope(&c, Naming::Proto)["timer"], json!({ "name": "http", "start": "1", "stop": "-2" }));
        c.message = Message::Event(Event { title: "t".into(), body: "b".into() });
        assert_eq!(envelope(&c, Naming::Proto)["event"], json!({ "title": "t", "body": "b" }));
        assert!(envelope(&c, Naming::Proto).get("gauge").is_none(), "exactly one kind is written");
    }

    #[test]
    fn non_finite_doubles_are_strings() {
        assert_eq!(double(f64::NAN), json!("NaN"));
        assert_eq!(double(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(double(0.25), json!(0.25));
        assert_eq!(double(-3.0), json!(-3));
    }

    #[test]
    fn an_empty_read_response_has_an_empty_batch() {
        assert_eq!(read_response([]), json!({ "envelopes": { "batch": [] } }));
    }
}

//! Envelopes in JSON exactly as Cloud Foundry's log endpoints write them: protobuf's canonical
//! JSON mapping with every field emitted (64-bit integers as strings, `bytes` as standard
//! base64, enums by name, `deprecated_tags` as `{}`). log-cache's gateway keeps the proto field
//! names (`source_id`); the RLP gateway's stream uses the lowerCamelCase JSON names
//! (`sourceId`). The only module that knows the wire format of envelopes.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::envelope::{Envelope, LogStream, Message};

/// Which field names to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `source_id`, `instance_id`, `deprecated_tags` (log-cache's `/api/v1/read`).
    Proto,
    /// `sourceId`, `instanceId`, `deprecatedTags` (the RLP gateway's `/v2/read`).
    Camel,
}

/// One envelope as a JSON object.
pub fn envelope(e: &Envelope, naming: Naming) -> Value {
    let (source_id, instance_id, deprecated_tags) = match naming {
        Naming::Proto => ("source_id", "instance_id", "deprecated_tags"),
        Naming::Camel => ("sourceId", "instanceId", "deprecatedTags"),
    };
    let mut out = Map::new();
    out.insert("timestamp".into(), Value::String(e.timestamp.to_string()));
    out.insert(source_id.into(), Value::String(e.source_id.clone()));
    out.insert(instance_id.into(), Value::String(e.instance_id.clone()));
    out.insert(deprecated_tags.into(), Value::Object(Map::new()));
    let tags = e.tags.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    out.insert("tags".into(), Value::Object(tags));
    let (key, body) = match &e.message {
        Message::Log(log) => {
            let stream = match log.stream {
                LogStream::Out => "OUT",
                LogStream::Err => "ERR",
            };
            let payload = base64::engine::general_purpose::STANDARD.encode(&log.payload);
            ("log", json!({ "payload": payload, "type": stream }))
        }
        Message::Counter(c) => {
            ("counter", json!({ "name": c.name, "delta": c.delta.to_string(), "total": c.total.to_string() }))
        }
        Message::Gauge(g) => {
            let metrics: Map<String, Value> = g
                .metrics
                .iter()
                .map(|(name, v)| (name.clone(), json!({ "unit": v.unit, "value": double(v.value) })))
                .collect();
            ("gauge", json!({ "metrics": metrics }))
        }
        Message::Timer(t) => {
            ("timer", json!({ "name": t.name, "start": t.start.to_string(), "stop": t.stop.to_string() }))
        }
        Message::Event(ev) => ("event", json!({ "title": ev.title, "body": ev.body })),
    };
    out.insert(key.into(), body);
    Value::Object(out)
}

/// An `EnvelopeBatch`: `{"batch":[...]}`.
pub fn batch<'a>(envelopes: impl IntoIterator<Item = &'a Envelope>, naming: Naming) -> Value {
    let batch: Vec<Value> = envelopes.into_iter().map(|e| envelope(e, naming)).collect();
    json!({ "batch": batch })
}

/// log-cache's `ReadResponse`: `{"envelopes":{"batch":[...]}}`.
pub fn read_response<'a>(envelopes: impl IntoIterator<Item = &'a Envelope>) -> Value {
    json!({ "envelopes": batch(envelopes, Naming::Proto) })
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

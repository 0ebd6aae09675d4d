//! Query strings of the two read APIs, parsed as their Go servers parse them: log-cache's read
//! parameters (grpc-gateway: integers base 10, enum names or numbers, Go's `ParseBool`,
//! unknown parameters ignored) and the RLP gateway's selector flags (`?log&gauge&source_id=…`).

use std::collections::BTreeSet;

use crate::envelope::EnvelopeType;
use crate::store::ReadRequest;
use crate::subscribe::Filter;

/// A refused query: a short machine name (the RLP gateway's `error`) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQuery {
    pub name: &'static str,
    pub message: String,
}

fn bad(name: &'static str, message: impl Into<String>) -> BadQuery {
    BadQuery { name, message: message.into() }
}

fn pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, BadQuery> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or(""))
        .map_err(|e| bad("invalid_query", format!("query string cannot be parsed: {e}")))
}

fn int(key: &str, value: &str) -> Result<i64, BadQuery> {
    value.parse::<i64>().map_err(|_| {
        bad("invalid_query", format!("type mismatch, parameter: {key}, error: {value:?} is not a 64-bit integer"))
    })
}

/// Go's `strconv.ParseBool`.
fn go_bool(key: &str, value: &str) -> Result<bool, BadQuery> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(bad("invalid_query", format!("type mismatch, parameter: {key}, error: {value:?} is not a boolean"))),
    }
}

/// `LOG`/`1`, ... ; `ANY`/`0` is `None` (no restriction).
fn envelope_type(value: &str) -> Result<Option<EnvelopeType>, BadQuery> {
    let t = match value {
        "ANY" | "0" => None,
        "LOG" | "1" => Some(EnvelopeType::Log),
        "COUNTER" | "2" => Some(EnvelopeType::Counter),
        "GAUGE" | "3" => Some(EnvelopeType::Gauge),
        "TIMER" | "4" => Some(EnvelopeType::Timer),
        "EVENT" | "5" => Some(EnvelopeType::Event),
        _ => {
            return Err(bad(
                "invalid_query",
                format!(
                    "envelope_types: {value:?} is not one of ANY, LOG, COUNTER, GAUGE, TIMER, EVENT (or their numbers 0-5)"
                ),
            ));
        }
    };
    Ok(t)
}

/// log-cache's read parameters: `start_time`, `end_time`, `limit`, `envelope_types`
/// (repeatable), `descending`, `name_filter` (refused: Hearth does not filter by name).
pub fn read_request(raw: Option<&str>) -> Result<ReadRequest, BadQuery> {
    let mut req = ReadRequest::default();
    for (key, value) in pairs(raw)? {
        match key.as_str() {
            "start_time" => req.start_time = int(&key, &value)?,
            "end_time" => req.end_time = Some(int(&key, &value)?),
            "limit" => req.limit = Some(int(&key, &value)?),
            "descending" => req.descending = go_bool(&key, &value)?,
            "envelope_types" => {
                if let Some(t) = envelope_type(&value)?
                    && !req.envelope_types.contains(&t)
                {
                    req.envelope_types.push(t);
                }
            }
            "name_filter" if !value.is_empty() => {
                return Err(bad("invalid_query", "name_filter is not supported"));
            }
            _ => {}
        }
    }
    Ok(req)
}

/// What an RLP-gateway stream request selects.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamQuery {
    /// Empty: every source (the firehose).
    pub source_ids: Vec<String>,
    pub filter: Filter,
}

/// The RLP gateway's selector flags: `log`, `counter`, `gauge`, `timer`, `event` (present
/// with any value), `counter.name` and `gauge.name` (comma-separated names that must all be
/// present), `source_id` (repeatable); `shard_id` and `deterministic_name` are accepted.
pub fn stream_query(raw: Option<&str>) -> Result<StreamQuery, BadQuery> {
    let pairs = pairs(raw)?;
    if pairs.is_empty() {
        return Err(bad("empty_query", "query cannot be empty"));
    }
    let mut types = BTreeSet::new();
    let mut filter = Filter::default();
    let mut source_ids = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "log" => _ = types.insert(EnvelopeType::Log),
            "counter" => _ = types.insert(EnvelopeType::Counter),
            "gauge" => _ = types.insert(EnvelopeType::Gauge),
            "timer" => _ = types.insert(EnvelopeType::Timer),
            "event" => _ = types.insert(EnvelopeType::Event),
            "counter.name" => {
                if value.is_empty() {
                    return Err(bad("missing_counter_name", "counter.name is invalid without value"));
                }
                types.insert(EnvelopeType::Counter);
                filter.counter_names.push(value);
            }
            "gauge.name" => {
                if value.is_empty() || value.split(',').any(str::is_empty) {
                    return Err(bad("missing_gauge_name", "gauge.name is invalid without value"));
                }
                types.insert(EnvelopeType::Gauge);
                filter.gauge_names.push(value.split(',').map(str::to_string).collect());
            }
            "source_id" => {
                if value.is_empty() {
                    return Err(bad("invalid_source_id", "source_id is invalid without value"));
                }
                if !source_ids.contains(&value) {
                    source_ids.push(value);
                }
            }
            _ => {}
        }
    }
    if types.is_empty() {
        return Err(bad("missing_envelope_type", "query must provide at least one envelope type"));
    }
    filter.types = types;
    Ok(StreamQuery { source_ids, filter })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_parameters_parse_as_log_cache_parses_them() {
        let r = read_request(Some(
            "start_time=-6795364578871345152&end_time=20&limit=7&envelope_types=LOG&envelope_types=3&descending=t&x=y",
        ))
        .unwrap();
        assert_eq!(r.start_time, -6795364578871345152);
        assert_eq!(r.end_time, Some(20));
        assert_eq!(r.limit, Some(7));
        assert_eq!(r.envelope_types, vec![EnvelopeType::Log, EnvelopeType::Gauge]);
        assert!(r.descending);
        assert_eq!(read_request(Some("envelope_types=ANY")).unwrap().envelope_types, vec![]);
        assert_eq!(read_request(None).unwrap(), ReadRequest::default());
    }

    #[test]
    fn bad_read_parameters_are_refused() {
        for q in ["start_time=soon", "limit=1.5", "envelope_types=LOGS", "descending=yes", "end_time=", "name_filter=a"]
        {
            assert!(read_request(Some(q)).is_err(), "{q} is refused");
        }
    }

    #[test]
    fn stream_flags_select_types_and_sources() {
        let q = stream_query(Some("log&source_id=a&source_id=b&gauge.name=cpu,memory&shard_id=x")).unwrap();
        assert_eq!(q.source_ids, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(q.filter.types, [EnvelopeType::Log, EnvelopeType::Gauge].into_iter().collect());
        assert_eq!(q.filter.gauge_names, vec![vec!["cpu".to_string(), "memory".to_string()]]);
        assert_eq!(stream_query(Some("")).unwrap_err().name, "empty_query");
        assert_eq!(stream_query(Some("source_id=a")).unwrap_err().name, "missing_envelope_type");
        assert_eq!(stream_query(Some("counter.name=")).unwrap_err().name, "missing_counter_name");
        assert_eq!(stream_query(Some("log&source_id=")).unwrap_err().name, "invalid_source_id");
    }
}

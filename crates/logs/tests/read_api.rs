//! log-cache's read API over real HTTP: the time window (start inclusive, end exclusive, end
//! defaults to now), envelope types, limit (default 100, at most 1000), descending order, ring
//! eviction, `meta` and `info`, bad parameters refused with grpc-gateway's error JSON and no
//! change, and authorization (401, 403, 404) on every endpoint but `info`.

mod common;

use common::{line, payload, start, start_default};
use hearth_logs::{Envelope, HttpConfig, StoreConfig};
use serde_json::Value;

fn payloads(body: &Value) -> Vec<String> {
    body["envelopes"]["batch"].as_array().expect("a batch").iter().map(payload).collect()
}

#[tokio::test]
async fn a_read_answers_log_cache_json_for_the_window() {
    let s = start_default().await;
    for ts in 1000..1010 {
        s.store.append(line("app-a", ts, &format!("line {ts}")).with_tag("source_type", "APP/PROC/WEB")).unwrap();
    }
    let (status, body) = s.get_json("/api/v1/read/app-a?start_time=1002&end_time=1005", "admin").await;
    assert_eq!(status, 200);
    assert_eq!(payloads(&body), ["line 1002", "line 1003", "line 1004"], "start inclusive, end exclusive");
    let e = &body["envelopes"]["batch"][0];
    assert_eq!(e["timestamp"], "1002");
    assert_eq!(e["source_id"], "app-a");
    assert_eq!(e["instance_id"], "0");
    assert_eq!(e["deprecated_tags"], serde_json::json!({}));
    assert_eq!(e["tags"]["source_type"], "APP/PROC/WEB");
    assert_eq!(e["log"]["type"], "OUT");

    let (_, body) = s.get_json("/api/v1/read/app-a?start_time=1002&end_time=1008&limit=2", "admin").await;
    assert_eq!(payloads(&body), ["line 1002", "line 1003"], "ascending takes the oldest of the window");
    let (_, body) =
        s.get_json("/api/v1/read/app-a?start_time=1002&end_time=1008&limit=2&descending=true", "admin").await;
    assert_eq!(payloads(&body), ["line 1007", "line 1006"], "descending takes the newest, newest first");

    let (_, body) = s.get_json("/api/v1/read/app-a", "admin").await;
    assert_eq!(payloads(&body).len(), 10, "no parameters: everything up to now");
    let (_, body) = s.get_json("/api/v1/read/nothing-here", "admin").await;
    assert_eq!(body, serde_json::json!({ "envelopes": { "batch": [] } }));
}

#[tokio::test]
async fn the_end_defaults_to_now_and_types_filter() {
    let s = start_default().await;
    let now = hearth_logs::envelope::now_nanos();
    s.store.append(line("app-a", now - 2_000, "past")).unwrap();
    s.store.append(Envelope::gauge("app-a", "0", &[("cpu", "percentage", 1.5)]).at(now - 1_000)).unwrap();
    s.store.append(line("app-a", now + 3_600_000_000_000, "in an hour")).unwrap();

    let (_, body) = s.get_json("/api/v1/read/app-a", "admin").await;
    let batch = body["envelopes"]["batch"].as_array().unwrap();
    assert_eq!(batch.len(), 2, "the envelope from the future is after the default end (now): {body}");

    let (_, body) = s.get_json("/api/v1/read/app-a?envelope_types=GAUGE", "admin").await;
    let batch = body["envelopes"]["batch"].as_array().unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0]["gauge"]["metrics"]["cpu"], serde_json::json!({ "unit": "percentage", "value": 1.5 }));

    let both = "/api/v1/read/app-a?envelope_types=LOG&envelope_types=GAUGE&end_time=9223372036854775807";
    let (_, body) = s.get_json(both, "admin").await;
    assert_eq!(body["envelopes"]["batch"].as_array().unwrap().len(), 3);

    // The cf CLI asks from the zero time.Time, whose UnixNano is a large negative number.
    let (status, body) = s.get_json("/api/v1/read/app-a?start_time=-6795364578871345152", "admin").await;
    assert_eq!(status, 200);
    assert_eq!(body["envelopes"]["batch"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_limit_defaults_to_100_and_stops_at_1000() {
    let s = start_default().await;
    for ts in 1..=1500 {
        s.store.append(line("app-a", ts, &ts.to_string())).unwrap();
    }
    let (_, body) = s.get_json("/api/v1/read/app-a", "admin").await;
    let got = payloads(&body);
    assert_eq!(got.len(), 100);
    assert_eq!((got[0].as_str(), got[99].as_str()), ("1", "100"));
    let (_, body) = s.get_json("/api/v1/read/app-a?limit=1000&descending=1", "admin").await;
    let got = payloads(&body);
    assert_eq!((got.len(), got[0].as_str(), got[999].as_str()), (1000, "1500", "501"));
}

#[tokio::test]
async fn a_full_ring_evicts_the_oldest_and_meta_counts_them() {
    let s = start(StoreConfig { max_per_source: 5, ..StoreConfig::default() }, HttpConfig::default()).await;
    for ts in 1..=8 {
        s.store.append(line("app-a", ts, &ts.to_string())).unwrap();
    }
    s.store.append(line("app-b", 42, "b")).unwrap();
    // Out of order: slots in by timestamp, and being the oldest, is the one evicted.
    s.store.append(line("app-a", 2, "late")).unwrap();
    let (_, body) = s.get_json("/api/v1/read/app-a", "admin").await;
    assert_eq!(payloads(&body), ["4", "5", "6", "7", "8"]);

    let (status, meta) = s.get_json("/api/v1/meta", "admin").await;
    assert_eq!(status, 200);
    assert_eq!(
        meta["meta"]["app-a"],
        serde_json::json!({ "count": "5", "expired": "4", "oldest_timestamp": "4", "newest_timestamp": "8" })
    );
    assert_eq!(meta["meta"]["app-b"]["count"], "1");
    assert!(meta["meta"]["app-b"].get("expired").is_none(), "zero values are left out as protobuf JSON does");

    let (_, meta) = s.get_json("/api/v1/meta", "alice").await;
    let sources: Vec<&String> = meta["meta"].as_object().unwrap().keys().collect();
    assert_eq!(sources, ["app-a"], "alice sees only the sources she may read");
}

#[tokio::test]
async fn bad_parameters_get_a_400_in_log_cache_error_json_and_change_nothing() {
    let s = start_default().await;
    for ts in 1..=3 {
        s.store.append(line("app-a", ts, &ts.to_string())).unwrap();
    }
    for (query, says) in [
        ("limit=1001", "Limit (1001) must be 1000 or less"),
        ("limit=-1", "must be greater than zero"),
        ("start_time=5&end_time=4", "StartTime (5) must be before EndTime (4)"),
        ("start_time=yesterday", "start_time"),
        ("envelope_types=LOGS", "envelope_types"),
        ("descending=maybe", "descending"),
        ("name_filter=cpu", "name_filter"),
    ] {
        let (status, body) = s.get_json(&format!("/api/v1/read/app-a?{query}"), "admin").await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["code"], 3, "{query}: gRPC InvalidArgument");
        assert_eq!(body["details"], serde_json::json!([]));
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message:?} says {says:?}");
    }
    let (_, body) = s.get_json("/api/v1/read/app-a", "admin").await;
    assert_eq!(payloads(&body), ["1", "2", "3"]);
    assert_eq!(s.store.source_count(), 1);
}

#[tokio::test]
async fn only_callers_who_may_see_a_source_read_it() {
    let s = start_default().await;
    s.store.append(line("app-a", 1, "secret a")).unwrap();
    s.store.append(line("app-b", 1, "secret b")).unwrap();

    let resp = s.get("/api/v1/read/app-a", None).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    for (path, token, status) in [
        ("/api/v1/read/app-a", "forged", 401),
        ("/api/v1/read/app-a", "bob", 403),
        ("/api/v1/read/app-b", "alice", 404),
        ("/api/v1/meta", "forged", 401),
    ] {
        let (got, body) = s.get_json(path, token).await;
        assert_eq!(got, status, "{token} on {path}");
        assert!(!body.to_string().contains("secret"), "a refusal shows nothing");
    }
    let resp = s.client.get(format!("{}/api/v1/read/app-a", s.base)).header("Authorization", "Basic YTpi").send();
    assert_eq!(resp.await.unwrap().status(), 401, "only bearer tokens count");
    let (status, body) = s.get_json("/api/v1/read/app-a", "alice").await;
    assert_eq!((status, payloads(&body)), (200, vec!["secret a".to_string()]));
    let resp = s.client.get(format!("{}/api/v1/read/app-a", s.base)).header("Authorization", "BEARER alice");
    assert_eq!(resp.send().await.unwrap().status(), 200, "the scheme is case-insensitive");
}

#[tokio::test]
async fn source_ids_may_hold_slashes_and_info_needs_no_token() {
    let s = start_default().await;
    s.store.append(line("cf/doppler", 1, "component")).unwrap();
    let (status, body) = s.get_json("/api/v1/read/cf/doppler", "admin").await;
    assert_eq!((status, payloads(&body)), (200, vec!["component".to_string()]));

    let resp = s.get("/api/v1/info", None).await;
    assert_eq!(resp.status(), 200);
    let info: Value = resp.json().await.unwrap();
    assert_eq!(info["version"], "3.0.0");
    let uptime: u64 = info["vm_uptime"].as_str().expect("a string of seconds").parse().unwrap();
    assert!(uptime > 0);
}

#[tokio::test]
async fn over_its_byte_budget_the_cache_forgets_the_oldest_of_all_sources_first() {
    let budget = 64 * 1024;
    let s = start(StoreConfig { max_bytes: budget, ..StoreConfig::default() }, HttpConfig::default()).await;
    let text = "z".repeat(200);
    // Ten sources written in turns, timestamps rising: the oldest are spread over all sources.
    for round in 0..100i64 {
        for source in 0..10i64 {
            s.store.append(line(&format!("app-{source}"), round * 10 + source + 1, &text)).unwrap();
        }
    }
    assert!(s.store.bytes() <= budget, "{} bytes held", s.store.bytes());
    assert!(s.store.bytes() > budget / 2, "pruning stops near the budget: {} bytes", s.store.bytes());
    let (_, meta) = s.get_json("/api/v1/meta", "admin").await;
    let meta = meta["meta"].as_object().unwrap();
    assert_eq!(meta.len(), 10, "every source keeps its newest envelopes");
    let oldest: Vec<i64> = meta.values().map(|m| m["oldest_timestamp"].as_str().unwrap().parse().unwrap()).collect();
    let newest: Vec<i64> = meta.values().map(|m| m["newest_timestamp"].as_str().unwrap().parse().unwrap()).collect();
    let (lo, hi) = (oldest.iter().min().unwrap(), oldest.iter().max().unwrap());
    assert!(hi - lo < 20, "the oldest went first across sources, not one source emptied: {oldest:?}");
    assert!(newest.iter().all(|n| *n > 990), "the newest are all kept: {newest:?}");
    let expired: u64 = meta.values().map(|m| m["expired"].as_str().unwrap().parse::<u64>().unwrap()).sum();
    let count: u64 = meta.values().map(|m| m["count"].as_str().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(expired + count, 1000, "every envelope is either kept or counted as expired");
}

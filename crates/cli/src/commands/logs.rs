//! `hearth logs APP [--recent]` and the staging-log stream of push/start/restage: a
//! log-cache client (`GET {log_cache}/api/v1/read/{app guid}`) that reads envelopes the
//! way cf v8 does — the newest first for `--recent`, a walk forward for streaming — and
//! prints them as `cf logs` does.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use clap::Args;
use serde_json::Value;
use tokio::sync::watch;

use crate::commands::apps::find_app;
use crate::output::Ui;
use crate::resources::{guid, targeted_space};
use crate::session::Session;

/// The zero Go time in Unix nanoseconds: cf's "from the beginning".
const FROM_THE_BEGINNING: &str = "-6795364578871345152";

/// How often the stream reads again when nothing new came.
const POLL: Duration = Duration::from_millis(250);
/// Lines per read while following (log-cache's largest page).
const WALK_LIMIT: usize = 1000;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The app's name
    pub app: String,
    /// Print the app's recent lines and exit (otherwise follow new lines until Ctrl-C)
    #[arg(long)]
    pub recent: bool,
    /// Print the envelopes as JSON (with --recent)
    #[arg(long, requires = "recent")]
    pub json: bool,
}

/// One log line of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub timestamp_ns: i128,
    pub source_type: String,
    pub instance_id: String,
    pub stream: String,
    pub payload: String,
}

impl LogLine {
    /// cf's line: `   2024-05-01T12:00:00.12+0000 [APP/PROC/WEB/0] OUT payload`, one per payload line.
    pub fn render(&self) -> String {
        let when = time::OffsetDateTime::from_unix_timestamp_nanos(self.timestamp_ns)
            .ok()
            .and_then(|t| {
                let fmt = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:2]+0000"
                );
                t.format(&fmt).ok()
            })
            .unwrap_or_default();
        self.payload
            .split('\n')
            .map(|line| format!("   {when} [{}/{}] {} {line}", self.source_type, self.instance_id, self.stream))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Reads the envelopes of a `ReadResponse`; non-log envelopes are skipped.
pub fn parse_envelopes(body: &Value) -> Result<Vec<LogLine>> {
    let batch = body.pointer("/envelopes/batch").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut lines = Vec::new();
    for envelope in batch {
        let number = |v: Option<&Value>| -> Option<i128> {
            match v? {
                Value::String(s) => s.parse().ok(),
                Value::Number(n) => n.as_i64().map(i128::from),
                _ => None,
            }
        };
        let timestamp_ns = number(envelope.get("timestamp")).ok_or_else(|| anyhow!("an envelope has no timestamp"))?;
        let Some(log) = envelope.get("log") else { continue };
        let payload = log.get("payload").and_then(Value::as_str).unwrap_or_default();
        let payload =
            base64::engine::general_purpose::STANDARD.decode(payload).context("a log payload is not base64")?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
        lines.push(LogLine {
            timestamp_ns,
            source_type: text(envelope.pointer("/tags/source_type")),
            instance_id: text(envelope.get("instance_id").or_else(|| envelope.get("instanceId"))),
            stream: log.get("type").and_then(Value::as_str).unwrap_or("OUT").to_owned(),
            payload: String::from_utf8_lossy(&payload).trim_end_matches('\n').to_owned(),
        });
    }
    Ok(lines)
}

/// A log-cache client for one app, independent of the session (so it can run beside it).
#[derive(Clone)]
pub struct LogCache {
    client: reqwest::Client,
    base: String,
    authorization: String,
    app_guid: String,
}

impl LogCache {
    /// Finds log-cache from the root document's `links.log_cache`; `None` when the
    /// platform has none.
    pub async fn for_app(session: &mut Session, app_guid: &str) -> Result<Option<LogCache>> {
        let root = session.get(&format!("{}/", session.api()?)).await?;
        let Some(base) = root.pointer("/links/log_cache/href").and_then(Value::as_str) else {
            return Ok(None);
        };
        Ok(Some(LogCache {
            client: session.client().clone(),
            base: base.trim_end_matches('/').to_owned(),
            authorization: session.authorization().await?,
            app_guid: app_guid.to_owned(),
        }))
    }

    /// One read; `params` as cf sends them.
    pub async fn read(&self, params: &[(&str, &str)]) -> Result<(u16, Vec<LogLine>)> {
        let url = format!("{}/api/v1/read/{}", self.base, self.app_guid);
        let response = self
            .client
            .get(&url)
            .query(params)
            .header("authorization", &self.authorization)
            .send()
            .await
            .map_err(|e| anyhow!("{}", crate::session::describe_transport_error(&e)))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Ok((status, Vec::new()));
        }
        let body: Value = response.json().await.context("log cache answered with something that is not JSON")?;
        Ok((status, parse_envelopes(&body)?))
    }

    /// The last `limit` lines, oldest first (halving the limit on 429 as cf does).
    pub async fn recent(&self) -> Result<Vec<LogLine>> {
        let mut limit = 1000;
        loop {
            let limit_text = limit.to_string();
            let params = [
                ("descending", "true"),
                ("envelope_types", "LOG"),
                ("limit", limit_text.as_str()),
                ("start_time", FROM_THE_BEGINNING),
            ];
            match self.read(&params).await? {
                (200, mut lines) => {
                    lines.reverse();
                    return Ok(lines);
                }
                (429, _) if limit > 1 => limit /= 2,
                (status, _) => bail!("Failed to retrieve logs from Log Cache: unexpected status code {status}"),
            }
        }
    }

    /// Follows the app's lines from `from` (default: about a second before the newest
    /// one), handing each that passes `keep` to `emit`, until 5 reads in a row fail or
    /// `stop` turns true — then one last read delivers what is left, however recent.
    pub async fn stream(
        &self,
        from: Option<i128>,
        mut stop: Option<watch::Receiver<bool>>,
        keep: impl Fn(&LogLine) -> bool,
        mut emit: impl FnMut(&LogLine),
    ) {
        let mut errors = 0;
        let mut start = match from {
            Some(from) => from,
            None => loop {
                // The newest envelope of any type: where the walk starts.
                match self.read(&[("descending", "true"), ("limit", "1"), ("start_time", FROM_THE_BEGINNING)]).await {
                    Ok((200, lines)) => {
                        break lines.first().map_or_else(now_ns, |newest| newest.timestamp_ns) - 1_000_000_000;
                    }
                    _ => {
                        errors += 1;
                        if errors >= 5 {
                            return;
                        }
                    }
                }
                tokio::time::sleep(POLL).await;
            },
        };
        loop {
            let last_read = stop.as_ref().is_some_and(|s| *s.borrow());
            let start_text = start.to_string();
            let limit = WALK_LIMIT.to_string();
            let params = [("envelope_types", "LOG"), ("limit", limit.as_str()), ("start_time", start_text.as_str())];
            match self.read(&params).await {
                Ok((200, lines)) => {
                    errors = 0;
                    // Lines from the last 2 s may still be joined by older ones: read them
                    // later, unless this is the last read — or the answer is full: the app
                    // is that chatty, and waiting would let the cache evict what follows.
                    let full = lines.len() >= WALK_LIMIT;
                    let horizon = if last_read || full { i128::MAX } else { now_ns() - 2_000_000_000 };
                    let ready: Vec<&LogLine> = lines.iter().filter(|l| l.timestamp_ns <= horizon).collect();
                    if let Some(last) = ready.last() {
                        start = last.timestamp_ns + 1;
                        ready.iter().filter(|l| keep(l)).for_each(|l| emit(l));
                        if !last_read {
                            continue;
                        }
                    }
                }
                _ => {
                    errors += 1;
                    if errors >= 5 {
                        return;
                    }
                }
            }
            if last_read {
                return;
            }
            match stop.as_mut() {
                Some(stop) => {
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.changed() => {}
                    }
                }
                None => tokio::time::sleep(POLL).await,
            }
        }
    }
}

fn now_ns() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

/// The staging lines (`STG`) of an app, printed in the background while it stages.
pub struct StagingLogs {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl StagingLogs {
    /// Starts printing the staging lines logged from now on; `None` when the platform
    /// has no log cache (a problem reaching it is a warning, never a failure).
    pub async fn start(session: &mut Session, app_guid: &str) -> Option<StagingLogs> {
        let cache = match LogCache::for_app(session, app_guid).await {
            Ok(Some(cache)) => cache,
            Ok(None) => return None,
            Err(e) => {
                eprintln!("Failed to retrieve logs from Log Cache: {e:#}");
                return None;
            }
        };
        let (stop, stopped) = watch::channel(false);
        let from = now_ns() - 1_000_000_000;
        let task = tokio::spawn(async move {
            let print = |l: &LogLine| println!("   {}", l.payload.replace('\n', "\n   "));
            cache.stream(Some(from), Some(stopped), |l| l.source_type == "STG", print).await;
        });
        Some(StagingLogs { stop, task })
    }

    /// Prints what is left (a last read, at most a few seconds) and stops.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), self.task).await.is_err() {
            abort.abort();
        }
    }
}

pub async fn logs(session: &mut Session, args: LogsArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let space = targeted_space(session)?;
    let org = session.config.org.clone().map(|o| o.name).unwrap_or_default();
    let app = find_app(session, &args.app).await?;
    let Some(cache) = LogCache::for_app(session, guid(&app)).await? else {
        bail!(
            "This platform has no log cache (its root document has no links.log_cache), so there are no logs to read."
        );
    };
    let user = session.user_name();
    if args.recent {
        ui.say(format!("Retrieving logs for app {} in org {org} / space {} as {user}...", args.app, space.name));
        ui.say("");
        let lines = cache.recent().await?;
        for line in &lines {
            ui.say(line.render());
        }
        let json: Vec<Value> = lines
            .iter()
            .map(|l| {
                serde_json::json!({"timestamp": l.timestamp_ns.to_string(), "source_type": l.source_type,
                    "instance_id": l.instance_id, "type": l.stream, "payload": l.payload})
            })
            .collect();
        return ui.json(&Value::Array(json));
    }
    ui.say(format!("Tailing logs for app {} in org {org} / space {} as {user}...", args.app, space.name));
    ui.say("");
    let mut cache = cache;
    loop {
        let started = std::time::Instant::now();
        cache.stream(None, None, |_| true, |l| println!("{}", l.render())).await;
        // Five failed reads in a row: the token may have expired while following. Renew
        // it and go on, unless the stream failed again right away.
        if started.elapsed() < Duration::from_secs(30) {
            break;
        }
        session.refresh().await?;
        match LogCache::for_app(session, guid(&app)).await? {
            Some(renewed) => cache = renewed,
            None => break,
        }
    }
    bail!(
        "Lost the connection to Log Cache after 5 failed reads. Run 'hearth logs {} --recent' to see what is there.",
        args.app
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_become_cf_lines() {
        let body = json!({"envelopes": {"batch": [
            {"timestamp": "1714564800123456789", "source_id": "g", "instance_id": "0",
             "tags": {"source_type": "APP/PROC/WEB"}, "log": {"payload": "aGVsbG8Kd29ybGQK", "type": "OUT"}},
            {"timestamp": 1714564801000000000_i64, "source_id": "g", "instance_id": "",
             "tags": {"source_type": "STG"}, "log": {"payload": "b29wcw=="}},
            {"timestamp": "1", "source_id": "g", "gauge": {"metrics": {}}},
        ]}});
        let lines = parse_envelopes(&body).unwrap();
        assert_eq!(lines.len(), 2, "non-log envelopes are skipped");
        assert_eq!(
            lines[0].render(),
            "   2024-05-01T12:00:00.12+0000 [APP/PROC/WEB/0] OUT hello\n   2024-05-01T12:00:00.12+0000 [APP/PROC/WEB/0] OUT world"
        );
        assert_eq!(lines[1].stream, "OUT");
        assert_eq!(lines[1].payload, "oops");
        assert!(parse_envelopes(&json!({})).unwrap().is_empty());
        assert!(parse_envelopes(&json!({"envelopes": {"batch": [{"log": {}}]}})).is_err());
    }
}

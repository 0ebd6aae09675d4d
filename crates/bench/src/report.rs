//! The run's results: one serialisable report, printed as a table or as JSON.

use std::time::Duration;

use serde::Serialize;

use crate::load::Measurement;

/// The throughput the API should reach, as a fraction of the minimal handler's.
pub const AIM: f64 = 0.5;

#[derive(Serialize)]
pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    pub seed: Seed,
    pub results: Vec<TargetResult>,
    pub comparison: Comparison,
    pub notes: Vec<String>,
}

#[derive(Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    /// The 1-minute load average before the run: other work sharing the CPUs.
    pub load_average_before: Option<f64>,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        });
        let load_average_before = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| text.split_whitespace().next().and_then(|v| v.parse().ok()));
        Machine { cpus: std::thread::available_parallelism().map_or(1, |n| n.get()), cpu_model, load_average_before }
    }
}

#[derive(Serialize)]
pub struct Settings {
    pub connections: usize,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    /// The API and the minimal handler are measured in this many alternating stretches.
    pub comparison_rounds: u32,
}

#[derive(Serialize)]
pub struct Seed {
    pub apps: usize,
    pub secs: f64,
    /// Size of the `GET /v3/apps?per_page=50` body both servers answer.
    pub list_body_bytes: usize,
}

#[derive(Serialize)]
pub struct TargetResult {
    pub name: String,
    pub request: String,
    pub ok: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Average CPU cores the whole process (servers and generator) used in the window.
    pub cpu_cores: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl TargetResult {
    pub fn new(name: &str, request: &str, m: &Measurement) -> TargetResult {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        TargetResult {
            name: name.into(),
            request: request.into(),
            ok: m.ok,
            errors: m.errors,
            per_second: m.per_second(),
            p50_ms: m.percentile(50.0).map(ms),
            p99_ms: m.percentile(99.0).map(ms),
            cpu_cores: m.cpu_cores,
            first_error: m.first_error.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct Comparison {
    pub api_per_second: f64,
    pub minimal_per_second: f64,
    /// API throughput / minimal handler throughput.
    pub ratio: f64,
    /// Throughput of answers built afresh (`Cache-Control: no-cache`).
    pub fresh_per_second: f64,
    /// Fresh answers' throughput / minimal handler throughput.
    pub fresh_ratio: f64,
    pub aim: f64,
    pub aim_met: bool,
}

impl Comparison {
    pub fn new(api: &Measurement, fresh: &Measurement, minimal: &Measurement) -> Comparison {
        let (api_per_second, minimal_per_second) = (api.per_second(), minimal.per_second());
        let of_minimal = |v: f64| if minimal_per_second > 0.0 { v / minimal_per_second } else { 0.0 };
        let ratio = of_minimal(api_per_second);
        let fresh_per_second = fresh.per_second();
        Comparison {
            api_per_second,
            minimal_per_second,
            ratio,
            fresh_per_second,
            fresh_ratio: of_minimal(fresh_per_second),
            aim: AIM,
            aim_met: ratio >= AIM,
        }
    }
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report is plain data")
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let s = &self.settings;
        out.push_str(&format!(
            "hearth-bench on {} CPU(s){}{}, loopback only\n",
            m.cpus,
            m.cpu_model.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
            m.load_average_before.map(|l| format!(", load average {l:.2} before the run")).unwrap_or_default(),
        ));
        out.push_str(&format!(
            "{} keep-alive connections; {} s measured per target, each stretch after a {} s warm-up; \
             API (kept and fresh answers) and minimal handler alternate in {} rounds\n",
            s.connections, s.duration_secs, s.warmup_secs, s.comparison_rounds,
        ));
        out.push_str(&format!(
            "seeded 1 org, 1 space, {} apps (SQLite) through the API in {:.1} s; list body {} bytes\n\n",
            self.seed.apps, self.seed.secs, self.seed.list_body_bytes
        ));
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        out.push_str(&format!(
            "{:<35} {:<26} {:>8} {:>6} {:>10} {:>9} {:>9} {:>6}\n",
            "target", "request", "ok", "errors", "per sec", "p50 ms", "p99 ms", "cores"
        ));
        for r in &self.results {
            out.push_str(&format!(
                "{:<35} {:<26} {:>8} {:>6} {:>10.1} {:>9} {:>9} {:>6}\n",
                r.name,
                r.request,
                r.ok,
                r.errors,
                r.per_second,
                ms(r.p50_ms),
                ms(r.p99_ms),
                r.cpu_cores.map_or_else(|| "-".to_string(), |c| format!("{c:.2}"))
            ));
        }
        for r in self.results.iter().filter(|r| r.first_error.is_some()) {
            out.push_str(&format!("  first error of {}: {}\n", r.name, r.first_error.as_deref().unwrap_or("")));
        }
        let c = &self.comparison;
        out.push_str(&format!(
            "\nAPI / minimal throughput: {:.1} / {:.1} = {:.2} (aim: at least {:.2}) -> aim {}\n",
            c.api_per_second,
            c.minimal_per_second,
            c.ratio,
            c.aim,
            if c.aim_met { "MET" } else { "NOT MET" }
        ));
        out.push_str(&format!(
            "answers built afresh (Cache-Control: no-cache) / minimal: {:.1} / {:.1} = {:.2}\n",
            c.fresh_per_second, c.minimal_per_second, c.fresh_ratio
        ));
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }
}

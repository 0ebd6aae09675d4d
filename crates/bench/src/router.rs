//! `hearth-bench router`: requests per second and latency through Hearth's router beside
//! nginx and HAProxy, all reverse-proxying the same tiny hyper backend on loopback, all
//! driven by the same `wrk` load on keep-alive connections (or `--close`: a new connection
//! per request). The targets take turns for several rounds so a neighbour's burst of CPU
//! falls on each.
//!
//! Needs the Debian packages `nginx-light` (or `nginx`), `haproxy` and `wrk`. Both proxies
//! start from configs written into a temporary directory: nginx with `daemon off`, one
//! worker process per core, upstream keep-alive; HAProxy in the foreground with a thread
//! per core and backend connection reuse; access logs off, as the router's is off here too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hearth_router::{EndpointSpec, RouteKey, Router, RouterConfig, TableHandle};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::progress;
use crate::report::Machine;

const HOST: &str = "bench.example.com";
const BODY: &[u8] = b"hello from the backend\n";
/// The router should reach at least nginx's throughput.
const AIM: f64 = 1.0;

/// Hearth's router beside nginx as reverse proxies to one backend, driven by wrk.
/// Debian packages: `apt-get install -y nginx-light wrk`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// Seconds each target is measured for in each round
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    duration: u64,
    /// Rounds; in each, the router, nginx and the bare backend take turns
    #[arg(long, value_name = "N", default_value_t = 3)]
    rounds: u32,
    /// Concurrent connections wrk keeps open
    #[arg(long, value_name = "N", default_value_t = 64)]
    connections: usize,
    /// wrk threads
    #[arg(long, value_name = "N", default_value_t = 2)]
    threads: usize,
    /// Router worker threads and nginx worker processes (default: the number of CPUs)
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Send `Connection: close`: a new TCP connection per request instead of keep-alive
    #[arg(long)]
    close: bool,
}

/// One wrk run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub target: &'static str,
    pub round: u32,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// Socket errors plus non-2xx/3xx responses.
    pub errors: u64,
}

#[derive(Debug, Serialize)]
struct Summary {
    target: &'static str,
    /// Mean of the rounds.
    per_second: f64,
    /// Median of the rounds' p50 and p99.
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    nginx_version: String,
    haproxy_version: String,
    settings: Settings,
    runs: Vec<Run>,
    summary: Vec<Summary>,
    /// Router requests per second / nginx requests per second.
    ratio: f64,
    /// Router requests per second / HAProxy requests per second.
    ratio_haproxy: f64,
    aim: f64,
    aim_met: bool,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Settings {
    duration_secs: u64,
    rounds: u32,
    connections: usize,
    wrk_threads: usize,
    workers: usize,
    keep_alive: bool,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    ensure!(args.rounds >= 1 && args.duration >= 1, "--rounds and --duration must be at least 1");
    ensure!(args.connections >= args.threads && args.threads >= 1, "--connections must be at least --threads (≥ 1)");
    let nginx_version = tool_version("nginx", &["-v"]).context("nginx is missing: apt-get install -y nginx-light")?;
    let haproxy_version = tool_version("haproxy", &["-v"]).context("HAProxy is missing: apt-get install -y haproxy")?;
    tool_version("wrk", &["--version"]).context("wrk is missing: apt-get install -y wrk")?;
    let workers = args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let machine = Machine::detect();

    let backend_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
    let backend = backend_runtime.block_on(start_backend())?;
    progress(&format!("backend on {backend}"));

    let table = TableHandle::new();
    let spec = EndpointSpec {
        addr: backend,
        instance_id: "bench-0".into(),
        index: 0,
        app_guid: "bench-app".into(),
        process_guid: "bench-process".into(),
    };
    table.add_endpoint(&RouteKey::new(HOST, "")?, spec)?;
    let shutdown = CancellationToken::new();
    let config = RouterConfig { workers, ..RouterConfig::default() };
    let router = backend_runtime.block_on(Router::new(config, table).start(shutdown.clone()))?;
    progress(&format!("Hearth's router on {} ({workers} workers)", router.http_addr()));

    let nginx = Proxy::start("nginx", backend, workers)?;
    progress(&format!("nginx on {} ({workers} worker processes)", nginx.addr));
    let haproxy = Proxy::start("haproxy", backend, workers)?;
    progress(&format!("HAProxy on {} ({workers} threads)", haproxy.addr));

    let targets = [
        ("hearth router", router.http_addr()),
        (nginx.name, nginx.addr),
        (haproxy.name, haproxy.addr),
        ("backend direct", backend),
    ];
    let measured = (|| {
        for (name, addr) in targets {
            progress(&format!("warming up {name}"));
            wrk(&args, name, addr, 0, 1)?;
        }
        let mut runs = Vec::new();
        for round in 1..=args.rounds {
            for (name, addr) in targets {
                progress(&format!("round {round} of {}: {name}", args.rounds));
                runs.push(wrk(&args, name, addr, round, args.duration)?);
            }
        }
        anyhow::Ok(runs)
    })();
    drop(nginx);
    drop(haproxy);
    shutdown.cancel();
    backend_runtime.block_on(router.stopped());
    let runs = measured?;

    let summary: Vec<Summary> = targets.iter().map(|(name, _)| summarize(name, &runs)).collect();
    let ratio = summary[0].per_second / summary[1].per_second.max(f64::MIN_POSITIVE);
    let ratio_haproxy = summary[0].per_second / summary[2].per_second.max(f64::MIN_POSITIVE);
    let report = Report {
        machine,
        nginx_version,
        haproxy_version: haproxy_version.lines().next().unwrap_or_default().to_string(),
        settings: Settings {
            duration_secs: args.duration,
            rounds: args.rounds,
            connections: args.connections,
            wrk_threads: args.threads,
            workers,
            keep_alive: !args.close,
        },
        runs,
        summary,
        ratio,
        ratio_haproxy,
        aim: AIM,
        aim_met: ratio >= AIM,
        notes: vec![
            "wrk, the proxy under test and the backend share the same CPUs; the backend-direct row is the \
             ceiling of this machine without a proxy"
                .into(),
            "per sec is the mean of the rounds; p50/p99 are the medians of the rounds' wrk percentiles".into(),
        ],
    };
    println!("{}", if args.json { serde_json::to_string_pretty(&report)? } else { table_text(&report) });
    Ok(())
}

fn tool_version(tool: &str, flag: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(tool).args(flag).output().with_context(|| format!("cannot run {tool}"))?;
    let text = String::from_utf8_lossy(&output.stderr).to_string() + &String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

/// A minimal hyper HTTP/1.1 server answering every request with `BODY`.
async fn start_backend() -> anyhow::Result<SocketAddr> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot bind the backend")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(BODY))))
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    Ok(addr)
}

/// A reverse proxy under test (nginx or HAProxy) as a child process with its own
/// directory; killed and cleaned up on drop.
struct Proxy {
    name: &'static str,
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Proxy {
    fn start(name: &'static str, backend: SocketAddr, workers: usize) -> anyhow::Result<Proxy> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let dir = std::env::temp_dir().join(format!("hearth-bench-{name}-{}-{stamp:x}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut command = match name {
            "nginx" => {
                let conf = dir.join("nginx.conf");
                std::fs::write(&conf, nginx_conf(&dir, addr, backend, workers))?;
                let mut c = Command::new("nginx");
                c.arg("-p").arg(&dir).arg("-c").arg(&conf);
                c
            }
            _ => {
                let conf = dir.join("haproxy.cfg");
                std::fs::write(&conf, haproxy_conf(addr, backend, workers))?;
                let mut c = Command::new("haproxy");
                c.arg("-db").arg("-f").arg(&conf);
                c
            }
        };
        let log = std::fs::File::create(dir.join("error.log"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let mut proxy = Proxy { name, child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Some(status) = proxy.child.try_wait()? {
                let log = std::fs::read_to_string(proxy.dir.join("error.log")).unwrap_or_default();
                bail!("{name} exited ({status}) before listening: {log}");
            }
            ensure!(Instant::now() < deadline, "{name} did not listen on {addr} within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(proxy)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGKILL to the master; nginx's workers follow (they watch their parent), HAProxy
        // runs threads in one process.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// HAProxy in HTTP mode with a thread per core and backend connection reuse, logging off.
fn haproxy_conf(listen: SocketAddr, backend: SocketAddr, workers: usize) -> String {
    format!(
        "global\n  nbthread {workers}\n  maxconn 8000\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
           option http-keep-alive\n  http-reuse always\n  option forwardfor\n\
         frontend front\n  bind {listen}\n  default_backend backend\n\
         backend backend\n  server app {backend}\n"
    )
}

fn nginx_conf(dir: &Path, listen: SocketAddr, backend: SocketAddr, workers: usize) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes {workers};\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; multi_accept on; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           keepalive_requests 1000000;\n\
           upstream backend {{ server {backend}; keepalive 256; }}\n\
           server {{\n    listen {listen} reuseport backlog=1024;\n    location / {{\n      proxy_pass http://backend;\n\
               proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n\
               proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }}\n  }}\n}}\n"
    )
}

fn wrk(args: &Args, target: &'static str, addr: SocketAddr, round: u32, secs: u64) -> anyhow::Result<Run> {
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg("-H")
        .arg(format!("Host: {HOST}"));
    if args.close {
        command.arg("-H").arg("Connection: close");
    }
    let output = command.arg(format!("http://{addr}/")).output().context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "wrk failed on {target}: {}{text}", String::from_utf8_lossy(&output.stderr));
    parse_wrk(&text, target, round).with_context(|| format!("cannot read wrk's output for {target}:\n{text}"))
}

fn parse_wrk(text: &str, target: &'static str, round: u32) -> Option<Run> {
    let after = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(str::trim));
    let per_second = after("Requests/sec:")?.parse().ok()?;
    let requests = text.lines().find(|l| l.contains("requests in"))?.split_whitespace().next()?.parse().ok()?;
    let mut errors = after("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    if let Some(socket) = after("Socket errors:") {
        // "connect 0, read 0, write 0, timeout 0"
        errors += socket.split(',').filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok()).sum::<u64>();
    }
    let percentile = |p: &str| after(p).and_then(parse_duration_ms);
    Some(Run { target, round, per_second, p50_ms: percentile("50%")?, p99_ms: percentile("99%")?, requests, errors })
}

/// wrk's `123.45us`, `1.20ms`, `2.00s`, `1.00m` → milliseconds.
fn parse_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let factor = match &text[split..] {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => return None,
    };
    Some(value * factor)
}

fn summarize(target: &'static str, runs: &[Run]) -> Summary {
    let mine: Vec<&Run> = runs.iter().filter(|r| r.target == target).collect();
    let median = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = mine.iter().map(|r| f(r)).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    Summary {
        target,
        per_second: mine.iter().map(|r| r.per_second).sum::<f64>() / mine.len().max(1) as f64,
        p50_ms: median(|r| r.p50_ms),
        p99_ms: median(|r| r.p99_ms),
        errors: mine.iter().map(|r| r.errors).sum(),
    }
}

fn table_text(report: &Report) -> String {
    let m = &report.machine;
    let s = &report.settings;
    let mut out = format!(
        "hearth-bench router on {} CPU(s){}{}; {}; {}\n{} connections ({}), {} wrk threads, {} s per target per round, \
         {} rounds, {} router workers / nginx worker processes / HAProxy threads\n\n",
        m.cpus,
        m.cpu_model.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        m.load_average_before.map(|l| format!(", load average {l:.2} before the run")).unwrap_or_default(),
        report.nginx_version,
        report.haproxy_version,
        s.connections,
        if s.keep_alive { "keep-alive" } else { "Connection: close" },
        s.wrk_threads,
        s.duration_secs,
        s.rounds,
        s.workers,
    );
    out.push_str(&format!(
        "{:<16} {:>5} {:>12} {:>9} {:>9} {:>7}\n",
        "target", "round", "per sec", "p50 ms", "p99 ms", "errors"
    ));
    for r in &report.runs {
        out.push_str(&format!(
            "{:<16} {:>5} {:>12.0} {:>9.3} {:>9.3} {:>7}\n",
            r.target, r.round, r.per_second, r.p50_ms, r.p99_ms, r.errors
        ));
    }
    out.push('\n');
    for r in &report.summary {
        out.push_str(&format!(
            "{:<16} {:>5} {:>12.0} {:>9.3} {:>9.3} {:>7}\n",
            r.target, "all", r.per_second, r.p50_ms, r.p99_ms, r.errors
        ));
    }
    out.push_str(&format!(
        "\nrouter / nginx throughput: {:.2} (aim: at least {:.2}) -> aim {}\n",
        report.ratio,
        report.aim,
        if report.aim_met { "MET" } else { "NOT MET" }
    ));
    out.push_str(&format!("router / HAProxy throughput: {:.2}\n", report.ratio_haproxy));
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 5s test @ http://127.0.0.1:8080/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.27ms  413.25us   8.50ms   79.91%
    Req/Sec    25.41k     1.98k   30.12k    71.00%
  Latency Distribution
     50%    1.19ms
     75%    1.42ms
     90%    1.73ms
     99%    2.73ms
  252893 requests in 5.00s, 34.73MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  50578.12
Transfer/sec:      6.95MB
";

    #[test]
    fn reads_wrk_output() {
        let run = parse_wrk(SAMPLE, "x", 1).unwrap();
        assert_eq!(run.requests, 252893);
        assert!((run.per_second - 50578.12).abs() < 1e-6);
        assert!((run.p50_ms - 1.19).abs() < 1e-9 && (run.p99_ms - 2.73).abs() < 1e-9);
        assert_eq!(run.errors, 7);
        assert_eq!(parse_duration_ms("512.00us"), Some(0.512));
        assert_eq!(parse_duration_ms("2.00s"), Some(2000.0));
        assert!(parse_wrk("garbage", "x", 1).is_none());
    }
}

//! `hearth-bench logs`: lines per second from an app's stdout to a streaming reader, and
//! how many were lost. The app (a pushed instance in a container) prints numbered lines at
//! paced rates, doubling step by step (each step two seconds' worth, in twentieths of a
//! second), then N lines at once as fast as `seq` can; the reader is what a user runs,
//! `hearth logs APP` following the RLP gateway stream. The headline is the highest paced
//! rate that arrived with no line lost (a reader that falls behind its buffer loses lines
//! and is told how many; the app is never slowed). Beside it, in the same run, the by-hand
//! way to follow a process's output: the same burst written to a file that `tail -F`
//! follows. Rates are taken on the reader's side (first line seen to last line seen).
//!
//! Runs the real `hearth` binary next to this one (`cargo build --release -p hearth
//! -p hearth-bench`); needs root (containers).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde::Serialize;

use crate::progress;
use crate::push::Platform;
use crate::report::Machine;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// Lines the app prints
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    lines: u64,
}

#[derive(Debug, Serialize)]
struct Reading {
    lines_sent: u64,
    lines_seen: u64,
    lost: u64,
    /// From the first line seen to the last one.
    seconds: f64,
    lines_per_second: f64,
}

#[derive(Debug, Serialize)]
struct Step {
    /// Lines per second the app printed at (`None`: all at once).
    paced_at: Option<u64>,
    reading: Reading,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    hearth: Vec<Step>,
    /// The highest paced rate hearth delivered with no loss.
    zero_loss_lines_per_second: Option<u64>,
    /// The burst written to a file followed by `tail -F`.
    tail_f: Reading,
    /// Hearth's zero-loss rate over tail -F's burst rate.
    ratio: f64,
}

/// Paced rates, lines per second.
const RATES: [u64; 6] = [2_500, 5_000, 10_000, 20_000, 40_000, 80_000];

/// The app's script: each paced step (numbered lines continuing across steps), a pause,
/// then the burst; numbering starts at `first`. Answers the script and each step's range.
fn script(burst: u64) -> (String, Vec<(Option<u64>, u64, u64)>) {
    let mut lines = vec!["sleep 3".to_string()];
    let mut ranges = Vec::new();
    let mut next = 1;
    for rate in RATES {
        let chunk = rate / 20;
        let (first, last) = (next, next + rate * 2 - 1);
        lines.push(format!(
            "i={first}; while [ $i -le {last} ]; do seq -f 'line %.0f' $i $((i + {chunk} - 1)); i=$((i + {chunk})); sleep 0.05; done"
        ));
        lines.push("sleep 1".into());
        ranges.push((Some(rate), first, last));
        next = last + 1;
    }
    lines.push(format!("seq -f 'line %.0f' {next} {}", next + burst - 1));
    ranges.push((None, next, next + burst - 1));
    (lines.join("\n") + "\n", ranges)
}

/// Reads `child`'s stdout until line `last` (of lines numbered `line N`) was seen or
/// nothing new came for `quiet`; kills the reader at the end. Answers when each number was
/// first seen.
fn read_numbers(mut child: Child, last_number: u64, quiet: Duration) -> anyhow::Result<Vec<(u64, Instant)>> {
    let stdout = child.stdout.take().context("the reader's stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let number = line.split("line ").nth(1).and_then(|n| n.trim().parse::<u64>().ok());
            if let Some(n) = number
                && tx.send((n, Instant::now())).is_err()
            {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut numbers = HashSet::new();
    while !numbers.contains(&last_number) {
        match rx.recv_timeout(quiet) {
            Ok((n, at)) => {
                if numbers.insert(n) {
                    seen.push((n, at));
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(seen)
}

/// What was seen of the lines numbered `first..=last`.
fn reading(seen: &[(u64, Instant)], first: u64, last: u64) -> Reading {
    let times: Vec<Instant> = seen.iter().filter(|(n, _)| (first..=last).contains(n)).map(|(_, t)| *t).collect();
    let seconds = match (times.iter().min(), times.iter().max()) {
        (Some(f), Some(l)) => l.duration_since(*f).as_secs_f64(),
        _ => 0.0,
    };
    let (sent, got) = (last - first + 1, times.len() as u64);
    Reading {
        lines_sent: sent,
        lines_seen: got,
        lost: sent - got,
        seconds,
        lines_per_second: if seconds > 0.0 { got as f64 / seconds } else { f64::NAN },
    }
}

fn through_hearth(platform: &Platform, work: &Path, burst: u64) -> anyhow::Result<Vec<Step>> {
    let dir = work.join("logs-app");
    std::fs::create_dir_all(&dir)?;
    let (script, ranges) = script(burst);
    std::fs::write(dir.join("print.sh"), script)?;
    // The instance then idles (an app that exits would be restarted and print again).
    let command = "sh print.sh; exec sleep 100000";
    let args = ["push", "chatty", "-p", dir.to_str().context("path")?, "-b", "binary_buildpack"];
    let out = platform.client(&args).args(["-u", "process", "--no-route", "-c", command]).output()?;
    ensure!(out.status.success(), "hearth push chatty: {}", String::from_utf8_lossy(&out.stderr));
    let reader = platform.client(&["logs", "chatty"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let last = ranges.last().map_or(0, |r| r.2);
    let seen = read_numbers(reader, last, Duration::from_secs(10))?;
    Ok(ranges.iter().map(|&(paced_at, first, last)| Step { paced_at, reading: reading(&seen, first, last) }).collect())
}

fn by_hand(work: &Path, lines: u64) -> anyhow::Result<Reading> {
    let file = work.join("by-hand.log");
    std::fs::write(&file, "")?;
    let reader = Command::new("tail")
        .args(["-n", "+1", "-F"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("tail")?;
    let writer = format!("sleep 1; seq -f 'line %.0f' 1 {lines} > {}", file.display());
    let mut writer = Command::new("sh").arg("-c").arg(writer).spawn()?;
    let seen = read_numbers(reader, lines, Duration::from_secs(10));
    let _ = writer.wait();
    Ok(reading(&seen?, 1, lines))
}

pub fn main(args: Args) -> anyhow::Result<()> {
    ensure!(args.lines >= 1, "--lines must be at least 1");
    ensure!(crate::push::nix_is_root(), "hearth-bench logs runs containers: run it as root");
    let machine = Machine::detect();
    let work = std::env::temp_dir().join(format!("hearth-bench-logs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = (|| -> anyhow::Result<Report> {
        progress("starting hearth server");
        let platform = Platform::start(&work)?;
        progress(&format!(
            "an app prints lines at {RATES:?} lines/s, then {} at once; `hearth logs` follows them (~{} s)",
            args.lines,
            RATES.len() * 3 + 5
        ));
        let hearth = through_hearth(&platform, &work, args.lines)?;
        progress("the burst into a file followed by tail -F");
        let tail_f = by_hand(&work, args.lines)?;
        let zero_loss = hearth.iter().filter(|s| s.reading.lost == 0).filter_map(|s| s.paced_at).max();
        let ratio = zero_loss.map_or(f64::NAN, |r| r as f64) / tail_f.lines_per_second;
        Ok(Report { machine, hearth, zero_loss_lines_per_second: zero_loss, tail_f, ratio })
    })();
    let _ = std::fs::remove_dir_all(&work);
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let m = &report.machine;
    println!(
        "app stdout to a streaming reader ({} CPUs, load before {:.2})",
        m.cpus,
        m.load_average_before.unwrap_or(f64::NAN)
    );
    println!("{:<34} {:>8} {:>8} {:>8} {:>10}", "reader (the app printing at)", "seen", "lost", "seconds", "lines/s");
    let row = |name: String, r: &Reading| {
        println!("{:<34} {:>8} {:>8} {:>8.2} {:>10.0}", name, r.lines_seen, r.lost, r.seconds, r.lines_per_second);
    };
    for step in &report.hearth {
        let at = step.paced_at.map_or("all at once".to_string(), |r| format!("{r} lines/s"));
        row(format!("hearth logs ({at})"), &step.reading);
    }
    row("tail -F of a file (all at once)".into(), &report.tail_f);
    match report.zero_loss_lines_per_second {
        Some(r) => {
            println!("zero-loss rate through hearth: {r} lines/s; over tail -F's burst rate: {:.3}x", report.ratio)
        }
        None => println!("hearth lost lines at every paced rate"),
    }
    Ok(())
}

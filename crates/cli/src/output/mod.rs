//! What the user sees: progress lines and results for people, or JSON on
//! stdout for machines (`--json`, which silences everything else on stdout).

pub mod table;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

/// Writes a command's output in the mode the user asked for.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    json: bool,
}

impl Ui {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// True when the command must print only JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// A line for people (progress, tips, tables). Silent in JSON mode.
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            println!("{}", line.as_ref());
        }
    }

    /// Already-rendered text for people (e.g. a table). Silent in JSON mode.
    pub fn print(&self, text: impl AsRef<str>) {
        if !self.json {
            print!("{}", text.as_ref());
            let _ = std::io::stdout().flush();
        }
    }

    /// The `OK` that closes every successful step, as the cf CLI prints it.
    pub fn ok(&self) {
        self.say("OK");
    }

    /// A line that shows a long transfer's progress, redrawn in place at most ten times a
    /// second; only on a terminal (a log or pipe gets the result line alone).
    pub fn progress(&self) -> Progress {
        Progress { live: !self.json && std::io::stdout().is_terminal(), drawn: None }
    }

    /// A warning for people; goes to stderr so it never breaks JSON output.
    pub fn warn(&self, line: impl AsRef<str>) {
        eprintln!("{}", line.as_ref());
    }

    /// The machine-readable result. Prints only in JSON mode.
    pub fn json(&self, value: &Value) -> Result<()> {
        if self.json {
            let text = serde_json::to_string_pretty(value).context("cannot encode JSON output")?;
            println!("{text}");
        }
        Ok(())
    }
}

/// A progress line being redrawn (see [`Ui::progress`]); cleared when dropped.
pub struct Progress {
    live: bool,
    drawn: Option<Instant>,
}

impl Progress {
    /// Redraws the line, unless it was drawn less than 100 ms ago (`last` draws regardless).
    pub fn show(&mut self, line: impl AsRef<str>, last: bool) {
        if !self.live || (!last && self.drawn.is_some_and(|t| t.elapsed() < Duration::from_millis(100))) {
            return;
        }
        print!("\r\x1b[2K{}", line.as_ref());
        let _ = std::io::stdout().flush();
        self.drawn = Some(Instant::now());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.live && self.drawn.is_some() {
            print!("\r\x1b[2K");
            let _ = std::io::stdout().flush();
        }
    }
}

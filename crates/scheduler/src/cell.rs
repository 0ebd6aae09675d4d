//! Cells: the machines that run instances and tasks, their capacity and presence.

use std::collections::BTreeSet;

use crate::{Error, Result, Time};

/// Memory, disk and container slots: a cell's capacity, or what something needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub containers: u32,
}

impl Resources {
    /// What one container with these limits takes.
    pub fn one(memory_mb: u64, disk_mb: u64) -> Resources {
        Resources { memory_mb, disk_mb, containers: 1 }
    }

    pub fn fits(&self, need: &Resources) -> bool {
        need.memory_mb <= self.memory_mb && need.disk_mb <= self.disk_mb && need.containers <= self.containers
    }

    pub fn add(&mut self, other: &Resources) {
        self.memory_mb += other.memory_mb;
        self.disk_mb += other.disk_mb;
        self.containers += other.containers;
    }

    pub fn minus(&self, other: &Resources) -> Resources {
        Resources {
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
            disk_mb: self.disk_mb.saturating_sub(other.disk_mb),
            containers: self.containers.saturating_sub(other.containers),
        }
    }
}

/// Whether a cell takes new work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CellState {
    /// Heartbeating; takes new work.
    Present,
    /// Heartbeating but leaving: its instances move elsewhere, it takes nothing new.
    Draining,
    /// Stopped heartbeating: its instances are started elsewhere.
    Missing,
}

impl CellState {
    pub fn as_str(self) -> &'static str {
        match self {
            CellState::Present => "present",
            CellState::Draining => "draining",
            CellState::Missing => "missing",
        }
    }

    pub fn parse(s: &str) -> Option<CellState> {
        match s {
            "present" => Some(CellState::Present),
            "draining" => Some(CellState::Draining),
            "missing" => Some(CellState::Missing),
            _ => None,
        }
    }
}

/// A cell as it registered.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    pub id: String,
    pub capacity: Resources,
    pub zone: String,
    /// Preloaded stacks it can run (`RootFs::Stack`).
    pub stacks: BTreeSet<String>,
    /// Whether it can run OCI images (`RootFs::Image`).
    pub supports_images: bool,
    /// It runs only workloads with exactly these placement tags.
    pub placement_tags: BTreeSet<String>,
    pub state: CellState,
    #[serde(with = "time::serde::rfc3339")]
    pub last_heartbeat: Time,
    pub version: i64,
}

/// Something that happens to a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CellEvent {
    Heartbeat,
    Drain,
    MarkMissing,
}

impl Cell {
    /// Checks a registration.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: &str| Err(Error::Invalid { what: format!("cell '{}'", self.id), why: why.into() });
        if self.id.is_empty() {
            return bad("id must not be empty");
        }
        let c = &self.capacity;
        if c.memory_mb == 0 || c.disk_mb == 0 || c.containers == 0 {
            return bad("capacity (memory, disk, containers) must be positive");
        }
        Ok(())
    }

    /// The one transition table.
    pub fn apply(&self, event: CellEvent, now: Time) -> Result<Cell> {
        use CellEvent as E;
        use CellState as S;
        let state = match (self.state, event) {
            (S::Present | S::Missing, E::Heartbeat) => S::Present,
            (S::Draining, E::Heartbeat) => S::Draining,
            (S::Present | S::Draining, E::Drain) => S::Draining,
            (S::Present | S::Draining, E::MarkMissing) => S::Missing,
            (S::Missing, E::Drain | E::MarkMissing) => {
                let event = match event {
                    E::Drain => "drain",
                    E::MarkMissing => "mark missing",
                    E::Heartbeat => "heartbeat",
                };
                return Err(Error::CellTransition { id: self.id.clone(), state: self.state.as_str(), event });
            }
        };
        let last_heartbeat = match event {
            E::Heartbeat => now,
            E::Drain | E::MarkMissing => self.last_heartbeat,
        };
        Ok(Cell { state, last_heartbeat, version: self.version + 1, ..self.clone() })
    }
}

#[cfg(test)]
pub(crate) fn sample(id: &str, zone: &str, memory_mb: u64, now: Time) -> Cell {
    Cell {
        id: id.into(),
        capacity: Resources { memory_mb, disk_mb: 100_000, containers: 250 },
        zone: zone.into(),
        stacks: ["cflinuxfs4".to_string()].into(),
        supports_images: true,
        placement_tags: BTreeSet::new(),
        state: CellState::Present,
        last_heartbeat: now,
        version: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_drain_go_missing_and_come_back_on_a_heartbeat() {
        let t0 = time::macros::datetime!(2026-01-01 00:00 UTC);
        let cell = sample("c1", "z1", 1024, t0);
        let draining = cell.apply(CellEvent::Drain, t0).unwrap();
        assert_eq!(draining.apply(CellEvent::Heartbeat, t0).unwrap().state, CellState::Draining);
        let missing = cell.apply(CellEvent::MarkMissing, t0).unwrap();
        let err = missing.apply(CellEvent::Drain, t0).unwrap_err();
        assert_eq!(err.to_string(), "cell c1: cannot drain while missing");
        let later = t0 + std::time::Duration::from_secs(20);
        let back = missing.apply(CellEvent::Heartbeat, later).unwrap();
        assert_eq!((back.state, back.last_heartbeat, back.version), (CellState::Present, later, 2));
        let mut bad = cell.clone();
        bad.capacity.containers = 0;
        assert!(bad.validate().is_err());
    }
}

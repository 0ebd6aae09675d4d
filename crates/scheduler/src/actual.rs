//! The actual state of one LRP instance (Diego's ActualLRP) and its one transition table.
//!
//! An instance is keyed by (process guid, index, presence). An ordinary instance moves
//! UNCLAIMED → CLAIMED → RUNNING and may crash; while its cell drains, the RUNNING instance
//! becomes an *evacuating* copy that keeps running until an ordinary replacement runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crash::{Restart, next_crash_count, restart_policy};
use crate::{Error, Result, Time};

/// Ordinary instances are the ones convergence counts; evacuating ones are leaving a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Presence {
    Ordinary,
    Evacuating,
}

/// Which instance: the process, its index, and whether it is the evacuating copy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActualLrpKey {
    pub process_guid: String,
    pub index: u32,
    pub presence: Presence,
}

impl ActualLrpKey {
    pub fn ordinary(process_guid: &str, index: u32) -> ActualLrpKey {
        ActualLrpKey { process_guid: process_guid.into(), index, presence: Presence::Ordinary }
    }
}

impl std::fmt::Display for ActualLrpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.presence {
            Presence::Ordinary => write!(f, "{}/{}", self.process_guid, self.index),
            Presence::Evacuating => write!(f, "{}/{}/evacuating", self.process_guid, self.index),
        }
    }
}

/// Diego's four instance states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActualState {
    Unclaimed,
    Claimed,
    Running,
    Crashed,
}

impl ActualState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActualState::Unclaimed => "UNCLAIMED",
            ActualState::Claimed => "CLAIMED",
            ActualState::Running => "RUNNING",
            ActualState::Crashed => "CRASHED",
        }
    }

    pub fn parse(s: &str) -> Option<ActualState> {
        match s {
            "UNCLAIMED" => Some(ActualState::Unclaimed),
            "CLAIMED" => Some(ActualState::Claimed),
            "RUNNING" => Some(ActualState::Running),
            "CRASHED" => Some(ActualState::Crashed),
            _ => None,
        }
    }
}

/// The container behind an instance: which cell, which instance guid.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Instance {
    pub cell_id: String,
    pub instance_guid: String,
}

/// A container port and the host port it is reachable on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: u16,
}

/// Which of an instance's addresses others dial (Diego's `preferred_address`): the
/// container's own address and port (`Instance`: a cell beside the router, whose bridge it
/// reaches), or the cell machine's address and the mapped host port (`Host`: a cell on
/// another machine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PreferredAddress {
    #[default]
    Instance,
    Host,
}

impl PreferredAddress {
    pub fn as_str(self) -> &'static str {
        match self {
            PreferredAddress::Instance => "INSTANCE",
            PreferredAddress::Host => "HOST",
        }
    }

    pub fn parse(s: &str) -> Option<PreferredAddress> {
        match s {
            "INSTANCE" => Some(PreferredAddress::Instance),
            "HOST" => Some(PreferredAddress::Host),
            _ => None,
        }
    }
}

/// One instance of a desired LRP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActualLrp {
    pub key: ActualLrpKey,
    pub state: ActualState,
    /// Set while CLAIMED or RUNNING.
    pub instance: Option<Instance>,
    pub address: Option<String>,
    pub ports: Vec<PortMapping>,
    /// Whether `address` is the container's (dial container ports) or its cell's (dial host ports).
    #[serde(default)]
    pub preferred_address: PreferredAddress,
    /// When it entered its current state.
    #[serde(with = "time::serde::rfc3339")]
    pub since: Time,
    pub crash_count: u32,
    pub crash_reason: Option<String>,
    /// Why the last auction could not place it.
    pub placement_error: Option<String>,
    /// Bumped by every change; compare-and-swap in the store.
    pub version: i64,
}

/// Something that happens to an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActualLrpEvent {
    /// A cell reserves the instance and is about to create its container.
    Claim(Instance),
    /// The container is healthy.
    Start { instance: Instance, address: String, ports: Vec<PortMapping>, preferred_address: PreferredAddress },
    /// The container exited or failed its health check.
    Crash { instance: Instance, reason: String },
    /// The auction found no cell for it.
    FailPlacement { reason: String },
    /// Released for placement elsewhere (stale claim, missing cell, crash backoff over).
    Unclaim,
    /// Its cell drains: keep running as the evacuating copy until a replacement runs.
    Evacuate,
    /// Gone for good (scaled down, desired LRP removed, evacuation finished).
    Remove,
}

impl ActualLrpEvent {
    fn name(&self) -> &'static str {
        match self {
            ActualLrpEvent::Claim(_) => "claim",
            ActualLrpEvent::Start { .. } => "start",
            ActualLrpEvent::Crash { .. } => "crash",
            ActualLrpEvent::FailPlacement { .. } => "fail placement",
            ActualLrpEvent::Unclaim => "unclaim",
            ActualLrpEvent::Evacuate => "evacuate",
            ActualLrpEvent::Remove => "remove",
        }
    }
}

/// What an instance becomes.
// Returned and consumed at once, never stored in bulk: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    Becomes(ActualLrp),
    Removed,
}

impl ActualLrp {
    /// A new instance waiting for the auction.
    pub fn unclaimed(process_guid: &str, index: u32, now: Time) -> ActualLrp {
        ActualLrp {
            key: ActualLrpKey::ordinary(process_guid, index),
            state: ActualState::Unclaimed,
            instance: None,
            address: None,
            ports: Vec::new(),
            preferred_address: PreferredAddress::Instance,
            since: now,
            crash_count: 0,
            crash_reason: None,
            placement_error: None,
            version: 0,
        }
    }

    /// The cell it occupies, if any.
    pub fn cell_id(&self) -> Option<&str> {
        self.instance.as_ref().map(|i| i.cell_id.as_str())
    }

    fn illegal(&self, event: &ActualLrpEvent) -> Error {
        let state = match self.key.presence {
            Presence::Ordinary => self.state.as_str(),
            Presence::Evacuating => "evacuating",
        };
        Error::ActualTransition { key: self.key.to_string(), state, event: event.name() }
    }

    fn held_by(&self, by: &Instance) -> Result<()> {
        match &self.instance {
            Some(held) if held == by => Ok(()),
            Some(held) => Err(Error::InstanceMismatch {
                key: self.key.to_string(),
                held: held.instance_guid.clone(),
                cell: held.cell_id.clone(),
                by: by.instance_guid.clone(),
            }),
            None => Err(Error::InstanceMismatch {
                key: self.key.to_string(),
                held: "none".into(),
                cell: "none".into(),
                by: by.instance_guid.clone(),
            }),
        }
    }

    fn moved(&self, state: ActualState, now: Time) -> ActualLrp {
        let since = if state == self.state { self.since } else { now };
        ActualLrp { state, since, version: self.version + 1, ..self.clone() }
    }

    /// The one transition table. Illegal events are typed errors and change nothing.
    pub fn apply(&self, event: &ActualLrpEvent, now: Time) -> Result<Next> {
        use ActualLrpEvent as E;
        use ActualState as S;
        if self.key.presence == Presence::Evacuating {
            return match event {
                E::Remove => Ok(Next::Removed),
                E::Crash { instance, .. } => self.held_by(instance).map(|()| Next::Removed),
                E::Claim(_) | E::Start { .. } | E::FailPlacement { .. } | E::Unclaim | E::Evacuate => {
                    Err(self.illegal(event))
                }
            };
        }
        let next = match (self.state, event) {
            (_, E::Remove) => return Ok(Next::Removed),
            (S::Unclaimed | S::Crashed, E::Claim(by)) => {
                ActualLrp { instance: Some(by.clone()), placement_error: None, ..self.moved(S::Claimed, now) }
            }
            (S::Claimed, E::Claim(by)) => {
                self.held_by(by)?;
                self.clone()
            }
            (S::Unclaimed | S::Crashed, E::Start { instance, address, ports, preferred_address }) => ActualLrp {
                instance: Some(instance.clone()),
                address: Some(address.clone()),
                ports: ports.clone(),
                preferred_address: *preferred_address,
                placement_error: None,
                ..self.moved(S::Running, now)
            },
            (S::Claimed | S::Running, E::Start { instance, address, ports, preferred_address }) => {
                self.held_by(instance)?;
                ActualLrp {
                    address: Some(address.clone()),
                    ports: ports.clone(),
                    preferred_address: *preferred_address,
                    ..self.moved(S::Running, now)
                }
            }
            (S::Claimed | S::Running, E::Crash { instance, reason }) => {
                self.held_by(instance)?;
                let ran = match self.state {
                    S::Running => (now - self.since).try_into().unwrap_or(Duration::ZERO),
                    S::Unclaimed | S::Claimed | S::Crashed => Duration::ZERO,
                };
                let crash_count = next_crash_count(self.crash_count, ran);
                let state = match restart_policy(crash_count) {
                    Restart::Immediately => S::Unclaimed,
                    Restart::After(_) | Restart::Never => S::Crashed,
                };
                ActualLrp {
                    instance: None,
                    address: None,
                    ports: Vec::new(),
                    crash_count,
                    crash_reason: Some(reason.clone()),
                    since: now,
                    ..self.moved(state, now)
                }
            }
            (S::Unclaimed, E::FailPlacement { reason }) => {
                ActualLrp { placement_error: Some(reason.clone()), version: self.version + 1, ..self.clone() }
            }
            (S::Claimed | S::Running | S::Crashed, E::Unclaim) => {
                ActualLrp { instance: None, address: None, ports: Vec::new(), ..self.moved(S::Unclaimed, now) }
            }
            (S::Running, E::Evacuate) => ActualLrp {
                key: ActualLrpKey { presence: Presence::Evacuating, ..self.key.clone() },
                ..self.moved(S::Running, now)
            },
            (S::Claimed | S::Running | S::Crashed, E::FailPlacement { .. })
            | (S::Unclaimed, E::Unclaim)
            | (S::Unclaimed | S::Crashed, E::Crash { .. })
            | (S::Running, E::Claim(_))
            | (S::Unclaimed | S::Claimed | S::Crashed, E::Evacuate) => return Err(self.illegal(event)),
        };
        Ok(Next::Becomes(next))
    }
}

#[cfg(test)]
#[path = "actual_tests.rs"]
mod tests;

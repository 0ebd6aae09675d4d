//! Conversions between the scheduler's types and the store's rows. A row that does not
//! convert back is reported as corrupt, never guessed at.

use hearth_store::{ActualLrpRow, CellRow, DesiredLrpRow, TaskRow, format_time, time_of};

use crate::actual::{ActualLrp, ActualLrpKey, ActualState, Instance, PreferredAddress, Presence};
use crate::cell::{Cell, CellState, Resources};
use crate::model::DesiredLrp;
use crate::task::{Task, TaskState};
use crate::{Error, Result, Time};

fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Store(hearth_store::Error::Corrupt(format!("{what}: {detail}")))
}

fn time(what: &str, s: &str) -> Result<Time> {
    time_of(s).ok_or_else(|| corrupt(what, format!("bad time '{s}'")))
}

fn int<T: TryFrom<i64>>(what: &str, v: i64) -> Result<T> {
    T::try_from(v).map_err(|_| corrupt(what, format!("number {v} out of range")))
}

fn json<T: serde::de::DeserializeOwned>(what: &str, v: &serde_json::Value) -> Result<T> {
    serde_json::from_value(v.clone()).map_err(|e| corrupt(what, e))
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("scheduler types serialise")
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn cell_row(c: &Cell) -> CellRow {
    CellRow {
        id: c.id.clone(),
        memory_mb: big(c.capacity.memory_mb),
        disk_mb: big(c.capacity.disk_mb),
        containers: i64::from(c.capacity.containers),
        zone: c.zone.clone(),
        stacks: to_json(&c.stacks),
        supports_images: c.supports_images,
        placement_tags: to_json(&c.placement_tags),
        state: c.state.as_str().into(),
        last_heartbeat: format_time(c.last_heartbeat),
        version: c.version,
    }
}

pub fn cell(r: &CellRow) -> Result<Cell> {
    let what = format!("cell {}", r.id);
    Ok(Cell {
        id: r.id.clone(),
        capacity: Resources {
            memory_mb: int(&what, r.memory_mb)?,
            disk_mb: int(&what, r.disk_mb)?,
            containers: int(&what, r.containers)?,
        },
        zone: r.zone.clone(),
        stacks: json(&what, &r.stacks)?,
        supports_images: r.supports_images,
        placement_tags: json(&what, &r.placement_tags)?,
        state: CellState::parse(&r.state).ok_or_else(|| corrupt(&what, format!("state '{}'", r.state)))?,
        last_heartbeat: time(&what, &r.last_heartbeat)?,
        version: r.version,
    })
}

pub fn desired_row(d: &DesiredLrp, created_at: &str, now: Time) -> DesiredLrpRow {
    DesiredLrpRow {
        process_guid: d.process_guid.clone(),
        app_guid: d.app_guid.clone(),
        instances: i64::from(d.instances),
        definition: to_json(d),
        created_at: created_at.into(),
        updated_at: format_time(now),
        version: d.version,
    }
}

pub fn desired(r: &DesiredLrpRow) -> Result<DesiredLrp> {
    let mut d: DesiredLrp = json(&format!("desired LRP {}", r.process_guid), &r.definition)?;
    d.version = r.version;
    Ok(d)
}

pub fn actual_row(a: &ActualLrp) -> ActualLrpRow {
    ActualLrpRow {
        instance_key: a.key.to_string(),
        process_guid: a.key.process_guid.clone(),
        instance_index: i64::from(a.key.index),
        evacuating: a.key.presence == Presence::Evacuating,
        state: a.state.as_str().into(),
        cell_id: a.instance.as_ref().map(|i| i.cell_id.clone()),
        instance_guid: a.instance.as_ref().map(|i| i.instance_guid.clone()),
        address: a.address.clone(),
        ports: to_json(&a.ports),
        preferred_address: a.preferred_address.as_str().into(),
        since: format_time(a.since),
        crash_count: i64::from(a.crash_count),
        crash_reason: a.crash_reason.clone(),
        placement_error: a.placement_error.clone(),
        version: a.version,
    }
}

pub fn actual(r: &ActualLrpRow) -> Result<ActualLrp> {
    let what = format!("actual LRP {}", r.instance_key);
    let instance = match (&r.cell_id, &r.instance_guid) {
        (Some(cell_id), Some(instance_guid)) => {
            Some(Instance { cell_id: cell_id.clone(), instance_guid: instance_guid.clone() })
        }
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => return Err(corrupt(&what, "cell id without instance guid")),
    };
    Ok(ActualLrp {
        key: ActualLrpKey {
            process_guid: r.process_guid.clone(),
            index: int(&what, r.instance_index)?,
            presence: if r.evacuating { Presence::Evacuating } else { Presence::Ordinary },
        },
        state: ActualState::parse(&r.state).ok_or_else(|| corrupt(&what, format!("state '{}'", r.state)))?,
        instance,
        address: r.address.clone(),
        ports: json(&what, &r.ports)?,
        preferred_address: PreferredAddress::parse(&r.preferred_address)
            .ok_or_else(|| corrupt(&what, format!("preferred address '{}'", r.preferred_address)))?,
        since: time(&what, &r.since)?,
        crash_count: int(&what, r.crash_count)?,
        crash_reason: r.crash_reason.clone(),
        placement_error: r.placement_error.clone(),
        version: r.version,
    })
}

pub fn task_row(t: &Task) -> TaskRow {
    TaskRow {
        guid: t.guid.clone(),
        app_guid: t.definition.app_guid.clone(),
        definition: to_json(&t.definition),
        state: t.state.as_str().into(),
        cell_id: t.cell_id.clone(),
        failed: t.failed,
        failure_reason: t.failure_reason.clone(),
        result: t.result.clone(),
        created_at: format_time(t.created_at),
        updated_at: format_time(t.updated_at),
        version: t.version,
    }
}

pub fn task(r: &TaskRow) -> Result<Task> {
    let what = format!("task {}", r.guid);
    Ok(Task {
        guid: r.guid.clone(),
        definition: json(&what, &r.definition)?,
        state: TaskState::parse(&r.state).ok_or_else(|| corrupt(&what, format!("state '{}'", r.state)))?,
        cell_id: r.cell_id.clone(),
        failed: r.failed,
        failure_reason: r.failure_reason.clone(),
        result: r.result.clone(),
        created_at: time(&what, &r.created_at)?,
        updated_at: time(&what, &r.updated_at)?,
        version: r.version,
    })
}

//! The auction: choose a cell for each instance or task to start, as Diego's auctioneer.
//!
//! Among cells that are present, run the workload's stack (or images) and carry exactly its
//! placement tags, and have room: prefer the zone with the fewest instances of the same
//! process, then the lowest score. A cell's score is the average fraction of memory, disk
//! and containers it would have in use afterwards, plus 1000 for each instance of the same
//! process already on it (so instances spread before they pack) and 0.25 for each container
//! this auction already started there. A workload that fits nowhere gets a typed reason.

use std::collections::{BTreeSet, HashMap};

use crate::cell::{Cell, CellState, Resources};
use crate::model::{DesiredLrp, RootFs};
use crate::task::Task;

/// Diego's locality penalty per instance of the same process on a cell.
pub const LOCALITY_PENALTY: f64 = 1000.0;
/// Diego's default weight of containers already starting on a cell.
pub const STARTING_CONTAINER_WEIGHT: f64 = 0.25;

/// What is being placed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Work {
    Lrp { process_guid: String, index: u32 },
    Task { guid: String },
}

/// One workload to place and what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub work: Work,
    pub need: Resources,
    pub rootfs: RootFs,
    pub placement_tags: BTreeSet<String>,
}

impl Start {
    pub fn lrp(lrp: &DesiredLrp, index: u32) -> Start {
        Start {
            work: Work::Lrp { process_guid: lrp.process_guid.clone(), index },
            need: Resources::one(lrp.memory_mb, lrp.disk_mb),
            rootfs: lrp.rootfs.clone(),
            placement_tags: lrp.placement_tags.clone(),
        }
    }

    pub fn task(task: &Task) -> Start {
        let d = &task.definition;
        Start {
            work: Work::Task { guid: task.guid.clone() },
            need: Resources::one(d.memory_mb, d.disk_mb),
            rootfs: d.rootfs.clone(),
            placement_tags: d.placement_tags.clone(),
        }
    }

    fn process_guid(&self) -> Option<&str> {
        match &self.work {
            Work::Lrp { process_guid, .. } => Some(process_guid),
            Work::Task { .. } => None,
        }
    }
}

/// Why a workload could not be placed; the scheduler retries later.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("no cells are present")]
    NoCells,
    #[error("found no cells with matching placement tags {0:?}")]
    NoCellWithTags(Vec<String>),
    #[error("found no compatible cell for rootfs {0}")]
    NoCellWithStack(String),
    #[error("insufficient resources: {}", short_of(*.memory, *.disk, *.containers))]
    InsufficientResources { memory: bool, disk: bool, containers: bool },
}

fn short_of(memory: bool, disk: bool, containers: bool) -> String {
    let names: Vec<&str> = [(memory, "memory"), (disk, "disk"), (containers, "containers")]
        .into_iter()
        .filter_map(|(short, name)| short.then_some(name))
        .collect();
    names.join(", ")
}

/// The outcome of one auction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuctionResult {
    pub placed: Vec<(Start, String)>,
    pub failed: Vec<(Start, PlacementError)>,
}

#[derive(Clone)]
struct Slot {
    id: String,
    zone: usize,
    class: usize,
    total: Resources,
    free: Resources,
    starting: u32,
}

/// Cells that share stacks, image support and tags: compatibility is decided once per class.
#[derive(Clone)]
struct Class {
    stacks: BTreeSet<String>,
    supports_images: bool,
    tags: BTreeSet<String>,
}

/// The cells on offer and what is already on them; place workloads one by one or in a batch.
#[derive(Clone)]
pub struct Auction {
    slots: Vec<Slot>,
    by_id: HashMap<String, usize>,
    classes: Vec<Class>,
    zones: usize,
    /// Per process: instances on each cell (by slot) and in each zone.
    spread: HashMap<String, (HashMap<usize, u32>, Vec<u32>)>,
    scratch_cell: Vec<u32>,
}

impl Auction {
    /// An auction over the present cells (draining and missing cells take no new work).
    pub fn new(cells: &[Cell]) -> Auction {
        let mut zones: Vec<&str> = Vec::new();
        let mut classes: Vec<Class> = Vec::new();
        let mut slots = Vec::new();
        for cell in cells.iter().filter(|c| c.state == CellState::Present) {
            let zone = zones.iter().position(|z| *z == cell.zone).unwrap_or_else(|| {
                zones.push(&cell.zone);
                zones.len() - 1
            });
            let same = |k: &Class| {
                k.stacks == cell.stacks && k.supports_images == cell.supports_images && k.tags == cell.placement_tags
            };
            let class = classes.iter().position(same).unwrap_or_else(|| {
                classes.push(Class {
                    stacks: cell.stacks.clone(),
                    supports_images: cell.supports_images,
                    tags: cell.placement_tags.clone(),
                });
                classes.len() - 1
            });
            slots.push(Slot {
                id: cell.id.clone(),
                zone,
                class,
                total: cell.capacity,
                free: cell.capacity,
                starting: 0,
            });
        }
        let by_id = slots.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        let n = slots.len();
        Auction { slots, by_id, classes, zones: zones.len(), spread: HashMap::new(), scratch_cell: vec![0; n] }
    }

    /// Records something already running (or claimed) on a cell. Unknown or absent cells are ignored.
    pub fn allocate(&mut self, cell_id: &str, process_guid: Option<&str>, need: &Resources) {
        if let Some(&i) = self.by_id.get(cell_id) {
            self.take(i, process_guid, need, false);
        }
    }

    /// Gives back what [`Auction::allocate`] took (an instance moved away).
    pub fn release(&mut self, cell_id: &str, process_guid: Option<&str>, need: &Resources) {
        let Some(&i) = self.by_id.get(cell_id) else { return };
        let slot = &mut self.slots[i];
        slot.free.add(need);
        if let Some(guid) = process_guid
            && let Some((cells, zones)) = self.spread.get_mut(guid)
        {
            if let Some(n) = cells.get_mut(&i) {
                *n = n.saturating_sub(1);
            }
            zones[slot.zone] = zones[slot.zone].saturating_sub(1);
        }
    }

    fn take(&mut self, i: usize, process_guid: Option<&str>, need: &Resources, starting: bool) {
        let slot = &mut self.slots[i];
        slot.free = slot.free.minus(need);
        slot.starting += u32::from(starting);
        if let Some(guid) = process_guid {
            let zones = self.zones;
            let (cells, per_zone) =
                self.spread.entry(guid.to_string()).or_insert_with(|| (HashMap::new(), vec![0; zones]));
            *cells.entry(i).or_insert(0) += 1;
            per_zone[slot.zone] += 1;
        }
    }

    /// The ids of the cells on offer.
    pub fn cell_ids(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.id.as_str())
    }

    /// Free resources on a cell, if it is on offer.
    pub fn free(&self, cell_id: &str) -> Option<Resources> {
        self.by_id.get(cell_id).map(|&i| self.slots[i].free)
    }

    /// Whether a cell could ever run this workload (stack, images, tags), room aside.
    pub fn compatible(&self, cell_id: &str, start: &Start) -> bool {
        self.by_id.get(cell_id).is_some_and(|&i| self.class_fits(&self.classes[self.slots[i].class], start))
    }

    fn class_fits(&self, class: &Class, start: &Start) -> bool {
        let stack = match &start.rootfs {
            RootFs::Stack(s) => class.stacks.contains(s),
            RootFs::Image(_) => class.supports_images,
        };
        stack && class.tags == start.placement_tags
    }

    /// Places one workload, avoiding `exclude` if given; records the allocation on success.
    pub fn place_one(&mut self, start: &Start, exclude: Option<&str>) -> Result<String, PlacementError> {
        let i = self.choose(start, exclude.and_then(|id| self.by_id.get(id).copied()))?;
        self.take(i, start.process_guid(), &start.need, true);
        Ok(self.slots[i].id.clone())
    }

    fn choose(&mut self, start: &Start, exclude: Option<usize>) -> Result<usize, PlacementError> {
        if self.slots.is_empty() {
            return Err(PlacementError::NoCells);
        }
        let tag_ok: Vec<bool> = self.classes.iter().map(|k| k.tags == start.placement_tags).collect();
        if !tag_ok.iter().any(|ok| *ok) {
            return Err(PlacementError::NoCellWithTags(start.placement_tags.iter().cloned().collect()));
        }
        let class_ok: Vec<bool> = self.classes.iter().map(|k| self.class_fits(k, start)).collect();
        if !class_ok.iter().any(|ok| *ok) {
            let rootfs = match &start.rootfs {
                RootFs::Stack(s) => format!("stack '{s}'"),
                RootFs::Image(i) => format!("image '{i}'"),
            };
            return Err(PlacementError::NoCellWithStack(rootfs));
        }
        let spread = start.process_guid().and_then(|g| self.spread.get(g));
        if let Some((cells, _)) = spread {
            for (&i, &n) in cells {
                self.scratch_cell[i] = n;
            }
        }
        let need = start.need;
        // Per resource: whether some compatible cell had enough of it, and whether some lacked it.
        let (mut memory, mut disk, mut containers) = (false, false, false);
        let mut lacking = (false, false, false);
        let mut best: Option<(u32, f64, usize)> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            if !class_ok[slot.class] || Some(i) == exclude {
                continue;
            }
            let f = &slot.free;
            if !f.fits(&need) {
                memory |= f.memory_mb >= need.memory_mb;
                disk |= f.disk_mb >= need.disk_mb;
                containers |= f.containers >= need.containers;
                lacking.0 |= f.memory_mb < need.memory_mb;
                lacking.1 |= f.disk_mb < need.disk_mb;
                lacking.2 |= f.containers < need.containers;
                continue;
            }
            let zone_count = spread.map_or(0, |(_, zones)| zones[slot.zone]);
            let left = f.minus(&need);
            let used = |left: u64, total: u64| 1.0 - left as f64 / total as f64;
            let score = (used(left.memory_mb, slot.total.memory_mb)
                + used(left.disk_mb, slot.total.disk_mb)
                + used(u64::from(left.containers), u64::from(slot.total.containers)))
                / 3.0
                + f64::from(slot.starting) * STARTING_CONTAINER_WEIGHT
                + f64::from(self.scratch_cell[i]) * LOCALITY_PENALTY;
            if best.is_none_or(|(z, s, _)| (zone_count, score) < (z, s)) {
                best = Some((zone_count, score, i));
            }
        }
        if let Some((cells, _)) = spread {
            for &i in cells.keys() {
                self.scratch_cell[i] = 0;
            }
        }
        // Name what no cell had enough of; if each cell lacked something else, name every shortage.
        let (memory, disk, containers) = match (!memory, !disk, !containers) {
            (false, false, false) => lacking,
            nowhere => nowhere,
        };
        best.map(|(_, _, i)| i).ok_or(PlacementError::InsufficientResources { memory, disk, containers })
    }

    /// Places a batch as Diego orders it: LRP index 0 first (every process gets one
    /// instance before any gets a second), then larger before smaller; tasks after LRPs.
    pub fn run(&mut self, mut batch: Vec<Start>) -> AuctionResult {
        batch.sort_by_key(|s| {
            let (kind, index) = match &s.work {
                Work::Lrp { index, .. } => (0u8, u32::from(*index != 0)),
                Work::Task { .. } => (1, 0),
            };
            (kind, index, std::cmp::Reverse(s.need.memory_mb))
        });
        let mut result = AuctionResult::default();
        for start in batch {
            match self.place_one(&start, None) {
                Ok(cell) => result.placed.push((start, cell)),
                Err(e) => result.failed.push((start, e)),
            }
        }
        result
    }
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;

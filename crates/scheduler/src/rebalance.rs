//! The 'boulder' problem: an instance too big for any single cell's free memory although
//! the cells have enough free memory together. Plan moves of smaller instances off one
//! cell to make room; each move starts the instance elsewhere first and stops the original
//! only once the copy runs, so no instance is ever down.

use crate::actual::ActualLrpKey;
use crate::cell::Resources;
use crate::placement::{Auction, PlacementError, Start};

/// An instance already placed, as the planner needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub key: ActualLrpKey,
    pub cell_id: String,
    pub need: Resources,
    pub start: Start,
}

/// Move `key` from `from` to `to`: start on `to`, then stop on `from` once it runs there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub key: ActualLrpKey,
    pub from: String,
    pub to: String,
}

/// Moves that free `target` for the boulder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub target: String,
    pub moves: Vec<Move>,
}

/// Plans room for `boulder` when it is refused for memory alone although the free memory of
/// its compatible cells adds up to enough. Answers `None` when it fits already, when no set
/// of smaller instances can be moved off one cell, or when total free memory is too small.
/// The plan moving the least memory wins.
pub fn plan(auction: &Auction, placed: &[Placed], boulder: &Start) -> Option<Plan> {
    let candidates: Vec<String> =
        auction.cell_ids().filter(|c| auction.compatible(c, boulder)).map(str::to_string).collect();
    let free_memory: u64 = candidates.iter().filter_map(|c| auction.free(c)).map(|f| f.memory_mb).sum();
    if free_memory < boulder.need.memory_mb {
        return None;
    }
    let mut probe = auction.clone();
    match probe.place_one(boulder, None) {
        Ok(_) => return None,
        Err(PlacementError::InsufficientResources { .. }) => {}
        Err(PlacementError::NoCells | PlacementError::NoCellWithTags(_) | PlacementError::NoCellWithStack(_)) => {
            return None;
        }
    }
    let mut best: Option<(u64, Plan)> = None;
    for target in &candidates {
        let free = auction.free(target)?;
        let mut movable: Vec<&Placed> =
            placed.iter().filter(|p| p.cell_id == *target && p.need.memory_mb < boulder.need.memory_mb).collect();
        movable.sort_by_key(|p| std::cmp::Reverse(p.need.memory_mb));
        let mut room = free;
        let mut chosen = Vec::new();
        for p in movable {
            if room.fits(&boulder.need) {
                break;
            }
            room.add(&p.need);
            chosen.push(p);
        }
        if !room.fits(&boulder.need) {
            continue;
        }
        // Simulate: every chosen instance must find a home on another cell.
        let mut sim = auction.clone();
        let mut moves = Vec::new();
        let mut moved_memory = 0;
        let all_moved = chosen.iter().all(|p| match sim.place_one(&p.start, Some(target)) {
            Ok(to) => {
                moved_memory += p.need.memory_mb;
                moves.push(Move { key: p.key.clone(), from: target.clone(), to });
                true
            }
            Err(_) => false,
        });
        if all_moved && best.as_ref().is_none_or(|(m, _)| moved_memory < *m) {
            best = Some((moved_memory, Plan { target: target.clone(), moves }));
        }
    }
    best.map(|(_, plan)| plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::{Cell, sample as cell};
    use crate::model::sample as lrp;

    fn t0() -> crate::Time {
        time::macros::datetime!(2026-01-01 00:00 UTC)
    }

    fn fill(auction: &mut Auction, cell_id: &str, guid: &str, memory: u64) -> Placed {
        let start = Start::lrp(&lrp(guid, 1, memory), 0);
        auction.allocate(cell_id, Some(guid), &start.need);
        Placed { key: ActualLrpKey::ordinary(guid, 0), cell_id: cell_id.into(), need: start.need, start }
    }

    #[test]
    fn a_boulder_gets_a_cell_once_smaller_instances_move_off_it() {
        let cells: Vec<Cell> = (0..3).map(|i| cell(&format!("c{i}"), "z1", 2048, t0())).collect();
        let ids: Vec<String> = cells.iter().map(|c| c.id.clone()).collect();
        let mut auction = Auction::new(&cells);
        // Each cell has 1024 MB used by two 512 MB instances: 1024 free each, 3072 in all.
        let mut placed = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            placed.push(fill(&mut auction, id, &format!("a{i}"), 512));
            placed.push(fill(&mut auction, id, &format!("b{i}"), 512));
        }
        let boulder = Start::lrp(&lrp("boulder", 1, 1536), 0);
        assert!(auction.clone().place_one(&boulder, None).is_err());
        let plan = plan(&auction, &placed, &boulder).expect("a plan");
        assert_eq!(plan.moves.len(), 1, "moving one 512 MB instance frees 1536 MB: {plan:?}");
        let m = &plan.moves[0];
        assert_eq!(m.from, plan.target);
        assert_ne!(m.to, plan.target);
        // Carry the plan out on a copy: the boulder then fits on the target.
        let mut after = auction.clone();
        let moved = placed.iter().find(|p| p.key == m.key).unwrap();
        after.allocate(&m.to, Some(&m.key.process_guid), &moved.need);
        after.release(&m.from, Some(&m.key.process_guid), &moved.need);
        assert_eq!(after.place_one(&boulder, None).unwrap(), plan.target);
    }

    #[test]
    fn no_plan_when_total_free_memory_is_too_small_or_it_fits_already() {
        let cells: Vec<Cell> = (0..2).map(|i| cell(&format!("c{i}"), "z1", 1024, t0())).collect();
        let mut auction = Auction::new(&cells);
        let placed = vec![fill(&mut auction, "c0", "a", 768), fill(&mut auction, "c1", "b", 768)];
        assert_eq!(plan(&auction, &placed, &Start::lrp(&lrp("x", 1, 600), 0)), None, "512 MB free in all");
        assert_eq!(plan(&auction, &placed, &Start::lrp(&lrp("y", 1, 200), 0)), None, "fits already");
    }
}

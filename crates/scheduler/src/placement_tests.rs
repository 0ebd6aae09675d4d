//! The auction: scoring, spreading, compatibility and refusals.

use std::collections::HashMap;

use super::*;
use crate::cell::sample as cell;
use crate::model::sample as lrp;

fn t0() -> crate::Time {
    time::macros::datetime!(2026-01-01 00:00 UTC)
}

#[test]
fn instances_of_one_process_spread_over_cells_and_zones() {
    let cells: Vec<Cell> =
        (0..6).map(|i| cell(&format!("c{i}"), if i < 3 { "z1" } else { "z2" }, 8192, t0())).collect();
    let mut auction = Auction::new(&cells);
    let web = lrp("web", 6, 256);
    let result = auction.run((0..6).map(|i| Start::lrp(&web, i)).collect());
    assert!(result.failed.is_empty(), "{:?}", result.failed);
    let mut per_cell: HashMap<&str, u32> = HashMap::new();
    for (_, c) in &result.placed {
        *per_cell.entry(c.as_str()).or_default() += 1;
    }
    assert_eq!(per_cell.len(), 6, "one instance per cell: {per_cell:?}");
    // Two instances on three cells of two zones: one per zone.
    let mut auction = Auction::new(&cells[2..4]);
    let placed = auction.run((0..2).map(|i| Start::lrp(&web, i)).collect()).placed;
    let zones: BTreeSet<&str> = placed.iter().map(|(_, c)| if c == "c2" { "z1" } else { "z2" }).collect();
    assert_eq!(zones.len(), 2);
}

#[test]
fn the_emptier_cell_wins() {
    let cells = vec![cell("busy", "z1", 4096, t0()), cell("idle", "z1", 4096, t0())];
    let mut auction = Auction::new(&cells);
    auction.allocate("busy", Some("other"), &Resources::one(3000, 100));
    assert_eq!(auction.place_one(&Start::lrp(&lrp("web", 1, 512), 0), None).unwrap(), "idle");
    assert_eq!(auction.free("idle").unwrap().memory_mb, 4096 - 512);
}

#[test]
fn refusals_say_which_resource_or_which_requirement_is_missing() {
    let cells = vec![cell("c1", "z1", 1024, t0()), cell("c2", "z1", 1024, t0())];
    let mut auction = Auction::new(&cells);
    let big = lrp("big", 1, 2048);
    let err = auction.place_one(&Start::lrp(&big, 0), None).unwrap_err();
    assert_eq!(err, PlacementError::InsufficientResources { memory: true, disk: false, containers: false });
    assert_eq!(err.to_string(), "insufficient resources: memory");
    let mut java = lrp("java", 1, 128);
    java.rootfs = RootFs::Stack("windows".into());
    let err = auction.place_one(&Start::lrp(&java, 0), None).unwrap_err();
    assert_eq!(err.to_string(), "found no compatible cell for rootfs stack 'windows'");
    let mut tagged = lrp("tagged", 1, 128);
    tagged.placement_tags.insert("isolated".into());
    assert!(matches!(auction.place_one(&Start::lrp(&tagged, 0), None), Err(PlacementError::NoCellWithTags(_))));
    assert_eq!(Auction::new(&[]).place_one(&Start::lrp(&java, 0), None), Err(PlacementError::NoCells));
    assert_eq!(auction.free("c1").unwrap().memory_mb, 1024, "refusals allocate nothing");
}

#[test]
fn tagged_cells_run_only_tagged_work_and_draining_cells_take_none() {
    let mut iso = cell("iso", "z1", 8192, t0());
    iso.placement_tags.insert("secure".into());
    let mut draining = cell("draining", "z1", 8192, t0());
    draining.state = CellState::Draining;
    let cells = vec![iso, draining, cell("plain", "z1", 1024, t0())];
    let mut auction = Auction::new(&cells);
    let mut secure = lrp("secure", 1, 512);
    secure.placement_tags.insert("secure".into());
    assert_eq!(auction.place_one(&Start::lrp(&secure, 0), None).unwrap(), "iso");
    for i in 0..2 {
        assert_eq!(auction.place_one(&Start::lrp(&lrp("web", 2, 512), i), None).unwrap(), "plain");
    }
    assert!(auction.place_one(&Start::lrp(&lrp("web", 3, 512), 2), None).is_err(), "plain is full");
}

#[test]
fn a_batch_places_index_zero_and_big_instances_first() {
    let cells = vec![cell("c1", "z1", 1024, t0())];
    let mut auction = Auction::new(&cells);
    let small = lrp("small", 2, 256);
    let big = lrp("big", 1, 768);
    let batch = vec![Start::lrp(&small, 1), Start::lrp(&small, 0), Start::lrp(&big, 0)];
    let result = auction.run(batch);
    let placed: Vec<&Work> = result.placed.iter().map(|(s, _)| &s.work).collect();
    assert_eq!(
        placed,
        vec![
            &Work::Lrp { process_guid: "big".into(), index: 0 },
            &Work::Lrp { process_guid: "small".into(), index: 0 }
        ]
    );
    assert_eq!(result.failed.len(), 1);
    assert_eq!(result.failed[0].0.work, Work::Lrp { process_guid: "small".into(), index: 1 });
}

#[test]
fn tasks_are_placed_after_lrps_and_by_the_same_rules() {
    let cells = vec![cell("c1", "z1", 1024, t0())];
    let mut auction = Auction::new(&cells);
    let task = crate::task::Task::pending("t1", crate::task::sample_definition(512), t0()).unwrap();
    let result = auction.run(vec![Start::task(&task), Start::lrp(&lrp("web", 1, 768), 0)]);
    assert_eq!(result.placed.len(), 1);
    assert_eq!(result.failed[0].0.work, Work::Task { guid: "t1".into() });
}

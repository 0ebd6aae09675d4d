//! The store against real databases: SQLite always, PostgreSQL too when
//! `HEARTH_TEST_DATABASE_URL` names a server (CI sets it).

use std::collections::BTreeMap;

use hearth_store::{self as store, Cond, LabelOp, LabelRequirement, ListSpec, Org, Space, Store, Value};

async fn stores() -> Vec<(String, Store)> {
    let dir = std::env::temp_dir().join(format!("hearth-store-test-{}-{}", std::process::id(), store::new_guid()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let mut out = vec![("sqlite".to_string(), Store::open(&url).await.unwrap())];
    if let Ok(admin) = std::env::var("HEARTH_TEST_DATABASE_URL")
        && !admin.is_empty()
    {
        let name = format!("hearth_store_{}", &store::new_guid().replace('-', "")[..12]);
        let url = store::create_postgres_database(&admin, &name).await.unwrap();
        out.push(("postgres".to_string(), Store::open(&url).await.unwrap()));
    }
    out
}

fn org(name: &str) -> Org {
    let now = store::now();
    Org {
        guid: store::new_guid(),
        name: name.into(),
        suspended: false,
        quota_guid: None,
        created_at: now.clone(),
        updated_at: now,
    }
}

fn space(org: &str, name: &str) -> Space {
    let now = store::now();
    Space {
        guid: store::new_guid(),
        name: name.into(),
        org_guid: org.into(),
        allow_ssh: true,
        created_at: now.clone(),
        updated_at: now,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crud_round_trips_and_unique_names_conflict() {
    for (backend, st) in stores().await {
        let mut tx = st.begin().await.unwrap();
        let mut o = org("acme");
        store::insert(&mut tx, &o).await.unwrap();
        let clash = store::insert(&mut tx, &org("acme")).await;
        assert!(matches!(clash, Err(store::Error::Conflict(_))), "{backend}: {clash:?}");
        drop(tx); // rolled back: on PostgreSQL the failed statement aborted the transaction anyway
        let mut tx = st.begin().await.unwrap();
        store::insert(&mut tx, &o).await.unwrap();
        o.suspended = true;
        store::update(&mut tx, &o).await.unwrap();
        tx.commit().await.unwrap();
        let mut conn = st.conn().await.unwrap();
        let back: Org = store::get(&mut conn, &o.guid).await.unwrap().unwrap();
        assert_eq!(back, o, "{backend}");
        drop(conn);
        let mut tx = st.begin().await.unwrap();
        assert!(store::delete::<Org>(&mut tx, &o.guid).await.unwrap());
        assert!(!store::delete::<Org>(&mut tx, &o.guid).await.unwrap(), "{backend}: a second delete finds nothing");
        tx.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_transaction_leaves_nothing_behind() {
    for (backend, st) in stores().await {
        let o = org("ghost");
        let mut tx = st.begin().await.unwrap();
        store::insert(&mut tx, &o).await.unwrap();
        drop(tx);
        let mut conn = st.conn().await.unwrap();
        assert!(store::get::<Org>(&mut conn, &o.guid).await.unwrap().is_none(), "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_org_cascades_to_its_spaces() {
    for (backend, st) in stores().await {
        let o = org("parent");
        let s = space(&o.guid, "child");
        let mut tx = st.begin().await.unwrap();
        store::insert(&mut tx, &o).await.unwrap();
        store::insert(&mut tx, &s).await.unwrap();
        let orphan = store::insert(&mut tx, &space("no-such-org", "orphan")).await;
        assert!(matches!(orphan, Err(store::Error::ForeignKey(_))), "{backend}: {orphan:?}");
        drop(tx);
        let mut tx = st.begin().await.unwrap();
        store::insert(&mut tx, &o).await.unwrap();
        store::insert(&mut tx, &s).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = st.begin().await.unwrap();
        store::delete::<Org>(&mut tx, &o.guid).await.unwrap();
        tx.commit().await.unwrap();
        let mut conn = st.conn().await.unwrap();
        assert!(store::get::<Space>(&mut conn, &s.guid).await.unwrap().is_none(), "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_page_order_and_select_by_label() {
    for (backend, st) in stores().await {
        let mut tx = st.begin().await.unwrap();
        let mut guids = Vec::new();
        for i in 0..7 {
            let o = org(&format!("org-{i}"));
            guids.push(o.guid.clone());
            store::insert(&mut tx, &o).await.unwrap();
            let mut labels = BTreeMap::new();
            labels.insert("env".to_string(), Some(if i % 2 == 0 { "prod" } else { "dev" }.to_string()));
            store::patch_metadata(&mut tx, &o.guid, &labels, &BTreeMap::new()).await.unwrap();
        }
        tx.commit().await.unwrap();
        let mut conn = st.conn().await.unwrap();
        let spec = ListSpec { order_by: "name", descending: true, page: 2, per_page: 3, conds: vec![] };
        let page = store::list::<Org>(&mut conn, &spec).await.unwrap();
        assert_eq!(page.total, 7, "{backend}");
        let names: Vec<&str> = page.items.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["org-3", "org-2", "org-1"], "{backend}");
        let prod = ListSpec::all(vec![Cond::Label(LabelRequirement {
            key: "env".into(),
            op: LabelOp::In(vec!["prod".into()]),
        })]);
        assert_eq!(store::list::<Org>(&mut conn, &prod).await.unwrap().total, 4, "{backend}");
        let not_prod = ListSpec::all(vec![Cond::Label(LabelRequirement {
            key: "env".into(),
            op: LabelOp::NotIn(vec!["prod".into()]),
        })]);
        assert_eq!(store::list::<Org>(&mut conn, &not_prod).await.unwrap().total, 3, "{backend}");
        let md = store::metadata_for(&mut conn, &guids).await.unwrap();
        assert_eq!(md[&guids[1]].labels["env"], "dev", "{backend}");
        let some = ListSpec::all(vec![Cond::In("guid", guids[..2].to_vec()), Cond::Eq("suspended", Value::Int(0))]);
        assert_eq!(store::list::<Org>(&mut conn, &some).await.unwrap().items.len(), 2, "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let dir = std::env::temp_dir().join(format!("hearth-store-reopen-{}", store::new_guid()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let st = Store::open(&url).await.unwrap();
    let o = org("kept");
    let mut tx = st.begin().await.unwrap();
    store::insert(&mut tx, &o).await.unwrap();
    tx.commit().await.unwrap();
    st.close().await;
    let st = Store::open(&url).await.unwrap();
    let mut conn = st.conn().await.unwrap();
    assert_eq!(store::get::<Org>(&mut conn, &o.guid).await.unwrap().unwrap().name, "kept");
    assert!(Store::open("mysql://nope").await.is_err(), "unknown back ends are refused");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn placeholders_bind_by_number_and_readers_see_only_committed_rows() {
    for (backend, st) in stores().await {
        let o = org("numbered");
        let mut tx = st.begin().await.unwrap();
        store::insert(&mut tx, &o).await.unwrap();
        // While the write is open, a reader sees the database as it was, without waiting.
        let mut reader = st.conn().await.unwrap();
        let seen: Option<Org> = store::get(&mut reader, &o.guid).await.unwrap();
        assert!(seen.is_none(), "{backend}: an uncommitted row is visible");
        tx.commit().await.unwrap();
        // `$2` before `$1`, and `$1` twice: values go by number, not by position.
        let names = store::strings(
            &mut reader,
            "SELECT name FROM organizations WHERE guid = $2 AND (name = $1 OR name = $1 || 'x')",
            vec![Value::Text("numbered".into()), Value::Text(o.guid.clone())],
        )
        .await
        .unwrap();
        assert_eq!(names, ["numbered"], "{backend}");
        // A space in an org that does not exist is refused by the foreign key.
        let mut tx = st.begin().await.unwrap();
        let orphan = store::insert(&mut tx, &space(&store::new_guid(), "orphan")).await;
        assert!(matches!(orphan, Err(store::Error::ForeignKey(_))), "{backend}: {orphan:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_generation_moves_when_a_change_to_cached_tables_commits() {
    for (backend, st) in stores().await {
        let generation = || async { store::data_generation(&mut st.conn().await.unwrap()).await.unwrap() };
        let start = generation().await;

        let o = org("counted");
        let mut tx = st.begin().await.unwrap();
        store::insert(&mut tx, &o).await.unwrap();
        assert_eq!(generation().await, start, "{backend}: an uncommitted change is not counted by other readers");
        tx.commit().await.unwrap();
        let after_insert = generation().await;
        assert!(after_insert > start, "{backend}: an insert moves it");

        let mut tx = st.begin().await.unwrap();
        store::insert(&mut tx, &org("rolled-back")).await.unwrap();
        drop(tx);
        assert_eq!(generation().await, after_insert, "{backend}: a rolled-back change leaves it");

        let mut tx = st.begin().await.unwrap();
        let group = store::UaaGroup {
            guid: store::new_guid(),
            display_name: "not.cached".into(),
            description: None,
            created_at: store::now(),
            updated_at: store::now(),
            version: 0,
        };
        store::insert(&mut tx, &group).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(generation().await, after_insert, "{backend}: a table no cached answer reads leaves it");

        let mut last = after_insert;
        let s = space(&o.guid, "counted-space");
        let mut labels = BTreeMap::new();
        labels.insert("tier".to_string(), Some("gold".to_string()));
        for step in ["update", "space", "label", "cascade"] {
            let mut tx = st.begin().await.unwrap();
            match step {
                "update" => store::update(&mut tx, &Org { suspended: true, ..o.clone() }).await.unwrap(),
                "space" => store::insert(&mut tx, &s).await.unwrap(),
                "label" => store::patch_metadata(&mut tx, &s.guid, &labels, &BTreeMap::new()).await.unwrap(),
                _ => assert!(store::delete::<Org>(&mut tx, &o.guid).await.unwrap()),
            }
            tx.commit().await.unwrap();
            let now = generation().await;
            assert!(now > last, "{backend}: the {step} moves it ({last} -> {now})");
            last = now;
        }
        let mut conn = st.conn().await.unwrap();
        assert!(
            store::get::<Space>(&mut conn, &s.guid).await.unwrap().is_none(),
            "{backend}: the space went with its org"
        );
        drop(conn);

        // Many rows in one transaction: on PostgreSQL the number moves once per transaction.
        let o = org("many-labels");
        let many: BTreeMap<String, Option<String>> = (0..300).map(|i| (format!("k{i}"), Some("v".into()))).collect();
        let mut tx = st.begin().await.unwrap();
        store::insert(&mut tx, &o).await.unwrap();
        store::patch_metadata(&mut tx, &o.guid, &many, &many).await.unwrap();
        tx.commit().await.unwrap();
        let now = generation().await;
        assert!(now > last, "{backend}");
        if backend == "postgres" {
            assert_eq!(now, last + 1, "one transaction of 601 rows moves it once");
        }
    }
}

//! Crashes become audit events: every instance crash the scheduler records appears as
//! `audit.app.process.crash` on the app (actor: the app, as Cloud Foundry writes it), with
//! the instance, index, process type and exit description.

use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{ActualLrp, Event};
use hearth_store::{self as store, App, AuditEvent, Process, Space, Store};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Records crashes until `shutdown` fires.
pub async fn record_crashes(store: Store, scheduler: SchedulerStore, shutdown: CancellationToken) {
    let mut events = scheduler.subscribe();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(Event::ActualChanged { before, after }) if after.crash_count > before.crash_count => {
                if let Err(e) = record(&store, &before, &after).await {
                    tracing::warn!(key = %after.key, error = %e, "could not record a crash event");
                }
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

async fn record(store: &Store, before: &ActualLrp, after: &ActualLrp) -> Result<(), hearth_store::Error> {
    let mut conn = store.conn().await?;
    let process_guid = crate::lrps::process_guid_of(&after.key.process_guid);
    let Some(process) = store::get::<Process>(&mut conn, process_guid).await? else { return Ok(()) };
    let Some(app) = store::get::<App>(&mut conn, &process.app_guid).await? else { return Ok(()) };
    let space = store::get::<Space>(&mut conn, &app.space_guid).await?;
    let instance = before.instance.as_ref().or(after.instance.as_ref());
    let event = AuditEvent {
        guid: store::new_guid(),
        event_type: "audit.app.process.crash".into(),
        actor_guid: app.guid.clone(),
        actor_type: "app".into(),
        actor_name: app.name.clone(),
        target_guid: app.guid.clone(),
        target_type: "app".into(),
        target_name: app.name.clone(),
        data: json!({
            "instance": instance.map(|i| i.instance_guid.clone()),
            "index": after.key.index,
            "cell_id": instance.map(|i| i.cell_id.clone()),
            "reason": "CRASHED",
            "exit_description": after.crash_reason,
            "crash_count": after.crash_count,
            "crash_timestamp": after.since.unix_timestamp_nanos(),
            "process_type": process.process_type,
        }),
        space_guid: Some(app.space_guid.clone()),
        org_guid: space.map(|s| s.org_guid),
        created_at: store::now(),
        seq: crate::resources::audit_events::next_seq(),
    };
    let mut tx = store.begin().await?;
    store::insert(&mut tx, &event).await?;
    tx.commit().await
}

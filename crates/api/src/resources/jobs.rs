//! Asynchronous jobs (`/v3/jobs/:guid`): deletes answer 202 with a job the client polls.

use std::future::Future;

use axum::extract::{Path, State};
use axum::response::Response;
use hearth_store::{self as store, Job};
use serde_json::json;

use super::ok;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::{ApiState, render};

/// Records a PROCESSING job and runs `work` in the background; the job ends COMPLETE or
/// FAILED with the error in CF's format.
pub async fn spawn_job<F>(
    state: &ApiState,
    ctx: &Ctx,
    operation: &str,
    resource_type: &str,
    resource_guid: &str,
    work: F,
) -> ApiResult<String>
where
    F: Future<Output = ApiResult<()>> + Send + 'static,
{
    let now = store::now();
    let job = Job {
        guid: store::new_guid(),
        operation: operation.into(),
        state: "PROCESSING".into(),
        resource_type: resource_type.into(),
        resource_guid: resource_guid.into(),
        user_guid: Some(ctx.viewer.guid.clone()),
        errors: json!([]),
        warnings: json!([]),
        created_at: now.clone(),
        updated_at: now,
    };
    let mut tx = state.store.begin().await?;
    store::insert(&mut tx, &job).await?;
    tx.commit().await?;
    let st = state.store.clone();
    let guid = job.guid.clone();
    tokio::spawn(async move {
        let result = work.await;
        let mut job = job;
        match result {
            Ok(()) => job.state = "COMPLETE".into(),
            Err(e) => {
                tracing::warn!(job = %job.guid, operation = %job.operation, error = %e, "job failed");
                job.state = "FAILED".into();
                job.errors = json!([e.to_json()]);
            }
        }
        job.updated_at = store::now();
        let finish = async {
            let mut tx = st.begin().await?;
            store::update(&mut tx, &job).await?;
            tx.commit().await
        };
        if let Err(e) = finish.await {
            tracing::error!(job = %job.guid, error = %e, "could not record the job's end");
        }
    });
    Ok(guid)
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let job: Option<Job> = store::get(&mut conn, &guid).await?;
    // As in CF, any authenticated caller may read any job (it names no secret).
    let job = job.ok_or(ApiError::NotFound("Job"))?;
    Ok(ok(json!({
        "guid": job.guid,
        "created_at": render::time(&job.created_at),
        "updated_at": render::time(&job.updated_at),
        "operation": job.operation,
        "state": job.state,
        "links": {"self": render::link(&ctx, &format!("/v3/jobs/{}", job.guid))},
        "errors": job.errors,
        "warnings": job.warnings,
    })))
}

//! Staging a bits package with buildpacks: the API chooses the buildpacks and sets the
//! staging environment, the `Stager` runs the builder on a cell (a staging task: the cell
//! fetches the package and the buildpacks from the blobstore by key, stores the droplet tgz
//! and keeps the buildpacks' cache directories per app — the `BuildpackCache` namespace,
//! keyed by the app's guid — from one successful staging to the next), and the result
//! becomes a droplet: the stored tgz, the layer the cells lay over the stack, the process
//! types from `bin/release` with the app's `Procfile` on top.

use hearth_store::{self as store, App, Build, Buildpack, Droplet, Package};
use serde_json::{Map, Value, json};

use crate::{ApiState, StagingJob};

/// The buildpacks to use: the ones the build or app names (in that order), or every
/// enabled, uploaded buildpack in position order to detect among.
async fn choose(state: &ApiState, build: &Build, app: &App) -> Result<(Vec<Buildpack>, bool), String> {
    let mut conn = state.store.conn().await.map_err(|e| e.to_string())?;
    let all: Vec<Buildpack> = store::find_all(&mut conn, vec![]).await.map_err(|e| e.to_string())?;
    let named: Vec<String> = build.lifecycle["data"]["buildpacks"]
        .as_array()
        .or_else(|| app.lifecycle_data["buildpacks"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|b| b.as_str().map(str::to_string))
        .collect();
    if named.is_empty() {
        let mut usable: Vec<Buildpack> = all.into_iter().filter(|b| b.enabled && b.state == "READY").collect();
        usable.sort_by_key(|b| b.position);
        return Ok((usable, true));
    }
    let chosen = named
        .iter()
        .map(|name| {
            all.iter().find(|b| &b.name == name && b.state == "READY").cloned().ok_or_else(|| {
                format!("buildpack '{name}' does not exist or has no bits (hearth buildpacks lists them)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((chosen, false))
}

/// Stages `package` for `build`; answers the droplet to record.
pub async fn stage(state: &ApiState, build: &Build, package: &Package) -> Result<Droplet, String> {
    let stager = state
        .stager
        .clone()
        .ok_or("this platform runs no containers, so it cannot run buildpacks; push a docker image")?;
    let key = package.blob_key.as_deref().ok_or("the package has no bits")?;
    let mut conn = state.store.conn().await.map_err(|e| e.to_string())?;
    let app: Option<App> = store::get(&mut conn, &build.app_guid).await.map_err(|e| e.to_string())?;
    let app = app.ok_or("the app is gone")?;
    let (vcap_services, database_url) =
        crate::services_env::for_app(&mut conn, &app.guid).await.map_err(|e| e.to_string())?;
    drop(conn);
    let (buildpacks, detect) = choose(state, build, &app).await?;
    if buildpacks.is_empty() {
        return Err("no buildpacks are installed (hearth create-buildpack adds one)".into());
    }
    let mut chosen = Vec::new();
    for b in &buildpacks {
        let key = b.blob_key.as_deref().ok_or_else(|| format!("buildpack {} has no bits", b.name))?;
        chosen.push((b.name.clone(), key.to_string()));
    }
    let stack =
        build.lifecycle["data"]["stack"].as_str().or(app.lifecycle_data["stack"].as_str()).unwrap_or("cflinuxfs4");
    let vars = app.environment_variables.as_object().cloned().unwrap_or_default();
    let mut env: Vec<String> =
        vars.iter().map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string))).collect();
    env.push(format!("CF_STACK={stack}"));
    env.push(format!("MEMORY_LIMIT={}m", build.staging_memory_in_mb));
    env.push(format!("VCAP_SERVICES={vcap_services}"));
    if let Some(url) = &database_url {
        env.push(format!("DATABASE_URL={url}"));
    }
    env.push(format!(
        "VCAP_APPLICATION={}",
        json!({"application_id": app.guid, "application_name": app.name, "name": app.name, "space_id": app.space_guid,
               "limits": {"mem": build.staging_memory_in_mb, "disk": build.staging_disk_in_mb}})
    ));
    let job = StagingJob {
        build_guid: build.guid.clone(),
        app_guid: app.guid.clone(),
        package_key: key.to_string(),
        buildpacks: chosen,
        detect,
        env,
        memory_mb: u64::try_from(build.staging_memory_in_mb).unwrap_or(1024),
        disk_mb: u64::try_from(build.staging_disk_in_mb).unwrap_or(1024),
        stack: stack.to_string(),
    };
    let staged = stager.stage(job).await?;
    let process_types = process_types(&staged.release_yaml, staged.procfile.as_deref());
    let now = store::now();
    Ok(Droplet {
        guid: store::new_guid(),
        app_guid: app.guid.clone(),
        package_guid: Some(package.guid.clone()),
        state: "STAGED".into(),
        error: None,
        lifecycle: json!({"type": "buildpack", "data": {}}),
        process_types,
        execution_metadata: json!({"layer": staged.layer}).to_string(),
        buildpacks: json!([{"name": staged.buildpack, "buildpack_name": staged.buildpack,
                            "detect_output": staged.detect_output.trim(), "version": null}]),
        stack: Some(stack.to_string()),
        image: None,
        blob_key: Some(staged.droplet_key),
        sha256: Some(staged.droplet_sha256),
        created_at: now.clone(),
        updated_at: now,
    })
}

/// `bin/release`'s `default_process_types`, with the `Procfile`'s entries on top.
pub fn process_types(release_yaml: &str, procfile: Option<&str>) -> Value {
    let mut types = Map::new();
    if let Ok(release) = serde_yaml_ng::from_str::<Value>(release_yaml)
        && let Some(defaults) = release["default_process_types"].as_object()
    {
        for (k, v) in defaults {
            if let Some(cmd) = v.as_str() {
                types.insert(k.clone(), json!(cmd));
            }
        }
    }
    for line in procfile.unwrap_or_default().lines() {
        if let Some((kind, cmd)) = line.split_once(':')
            && !kind.trim().is_empty()
            && !kind.trim_start().starts_with('#')
        {
            types.insert(kind.trim().to_string(), json!(cmd.trim()));
        }
    }
    Value::Object(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_procfile_overrides_release_defaults() {
        let types = process_types(
            "---\ndefault_process_types:\n  web: ./server\n  worker: ./work\n",
            Some("web: ./server --fast\n# comment: no\nclock: ./tick\n"),
        );
        assert_eq!(types, json!({"web": "./server --fast", "worker": "./work", "clock": "./tick"}));
        assert_eq!(process_types("not yaml: [", None), json!({}));
    }
}

//! `hearth buildpacks`, `create-buildpack`, `update-buildpack` and `delete-buildpack`, as
//! cf v8 does them: the buildpack resource first (`POST`/`PATCH /v3/buildpacks`), then its
//! zip (`POST /v3/buildpacks/:guid/upload`, multipart `bits`; a directory is zipped first),
//! waiting for the upload's job where the server answers with one.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use reqwest::Method;
use reqwest::header::LOCATION;
use serde_json::{Map, Value, json};

use crate::output::Ui;
use crate::output::table::render;
use crate::prompt;
use crate::resources::{guid, name, with_query};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct BuildpacksArgs {
    /// Print the V3 buildpack resources as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CreateBuildpackArgs {
    /// The buildpack's name
    pub name: String,
    /// A directory or a zip of the buildpack
    pub path: String,
    /// Its place in the detection order (1 = first)
    pub position: i64,
    /// Create it disabled (staging does not use it)
    #[arg(long)]
    pub disable: bool,
    /// Print the buildpack resource as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpdateBuildpackArgs {
    /// The buildpack's name
    pub name: String,
    /// A directory or a zip with new bits
    #[arg(short = 'p')]
    pub path: Option<String>,
    /// Its new place in the detection order
    #[arg(short = 'i')]
    pub position: Option<i64>,
    /// Use it in staging
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Do not use it in staging
    #[arg(long)]
    pub disable: bool,
    /// Refuse new bits until unlocked
    #[arg(long, conflicts_with = "unlock")]
    pub lock: bool,
    /// Accept new bits again
    #[arg(long)]
    pub unlock: bool,
    /// A new name
    #[arg(long = "rename")]
    pub rename: Option<String>,
    /// Print the buildpack resource as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeleteBuildpackArgs {
    /// The buildpack's name
    pub name: String,
    /// Delete without asking for confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

/// The buildpack table as `cf buildpacks` prints it.
pub fn render_buildpacks(buildpacks: &[Value]) -> String {
    let mut rows =
        vec![["position", "name", "stack", "enabled", "locked", "state", "filename"].map(String::from).to_vec()];
    for b in buildpacks {
        let text = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
        rows.push(vec![
            b["position"].as_i64().map(|p| p.to_string()).unwrap_or_default(),
            text("name"),
            text("stack"),
            b["enabled"].as_bool().unwrap_or(false).to_string(),
            b["locked"].as_bool().unwrap_or(false).to_string(),
            text("state"),
            text("filename"),
        ]);
    }
    render(&rows)
}

pub async fn buildpacks(session: &mut Session, args: BuildpacksArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    ui.say(format!("Getting buildpacks as {}...", session.user_name()));
    ui.say("");
    let all = session.list("/v3/buildpacks?order_by=position").await?;
    if all.is_empty() {
        ui.say("No buildpacks found.");
    } else {
        ui.print(render_buildpacks(&all));
    }
    ui.json(&Value::Array(all))
}

async fn lookup(session: &mut Session, bp_name: &str) -> Result<Option<Value>> {
    let path = with_query("/v3/buildpacks", &[("names", bp_name)])?;
    Ok(session.list(&path).await?.into_iter().find(|b| name(b) == bp_name))
}

async fn find(session: &mut Session, bp_name: &str) -> Result<Value> {
    lookup(session, bp_name).await?.ok_or_else(|| anyhow!("Buildpack '{bp_name}' not found."))
}

/// The buildpack's zip: the file itself, or a directory zipped with its modes.
fn zip_of(path: &Path) -> Result<(String, Vec<u8>)> {
    let meta = std::fs::metadata(path).with_context(|| format!("Incorrect Usage: cannot read {}", path.display()))?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("buildpack").to_owned();
    if meta.is_dir() {
        let bits = super::push::bits::Bits::read(path)?;
        return Ok((format!("{file_name}.zip"), bits.zip(&Default::default())?));
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !bytes.starts_with(b"PK") {
        bail!("{} is not a zip file: a buildpack is a directory or a zip", path.display());
    }
    Ok((file_name, bytes))
}

async fn upload(session: &mut Session, ui: &Ui, bp: &Value, path: &str) -> Result<Value> {
    let (file_name, zip) = zip_of(Path::new(path))?;
    ui.say(format!("Uploading buildpack {} as {}...", name(bp), session.user_name()));
    let boundary = format!("hearth-bp-{:x}", std::process::id());
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"bits\"; filename=\"{file_name}\"\r\n\
         Content-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&zip);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let path = format!("/v3/buildpacks/{}/upload", guid(bp));
    let response = session.request_raw(Method::POST, &path, &content_type, body).await?;
    ui.ok();
    if let Some(location) = response.headers.get(LOCATION).and_then(|l| l.to_str().ok()).map(str::to_owned) {
        ui.say(format!("Processing uploaded buildpack {}...", name(bp)));
        session.wait_for_job(&location).await?;
        ui.ok();
    }
    session.get(&format!("/v3/buildpacks/{}", guid(bp))).await
}

pub async fn create_buildpack(session: &mut Session, args: CreateBuildpackArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    // Read the bits before creating anything: a bad path leaves no empty buildpack behind.
    zip_of(Path::new(&args.path))?;
    ui.say(format!("Creating buildpack {} as {}...", args.name, session.user_name()));
    let body = json!({"name": args.name, "position": args.position, "enabled": !args.disable});
    let bp = session.post("/v3/buildpacks", &body).await?;
    ui.ok();
    ui.say("");
    let bp = match upload(session, &ui, &bp, &args.path).await {
        Ok(bp) => bp,
        Err(e) => {
            // As cf: a buildpack whose bits failed is not left behind half-made.
            let _ = session.delete_and_wait(&format!("/v3/buildpacks/{}", guid(&bp))).await;
            return Err(e);
        }
    };
    ui.json(&bp)
}

pub async fn update_buildpack(session: &mut Session, args: UpdateBuildpackArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let mut bp = find(session, &args.name).await?;
    if let Some(path) = &args.path {
        zip_of(Path::new(path))?;
    }
    let mut changes = Map::new();
    if let Some(position) = args.position {
        changes.insert("position".into(), json!(position));
    }
    if args.enable || args.disable {
        changes.insert("enabled".into(), json!(args.enable));
    }
    if args.lock || args.unlock {
        changes.insert("locked".into(), json!(args.lock));
    }
    if let Some(new_name) = &args.rename {
        changes.insert("name".into(), json!(new_name));
    }
    if !changes.is_empty() {
        match &args.rename {
            Some(new_name) => {
                ui.say(format!("Renaming buildpack {} to {} as {}...", args.name, new_name, session.user_name()))
            }
            None => ui.say(format!("Updating buildpack {} as {}...", args.name, session.user_name())),
        }
        bp = session.patch(&format!("/v3/buildpacks/{}", guid(&bp)), &Value::Object(changes)).await?;
        ui.ok();
    }
    if let Some(path) = &args.path {
        if bp["locked"].as_bool() == Some(true) {
            bail!("Buildpack {} is locked: unlock it (--unlock) to upload new bits", name(&bp));
        }
        ui.say("");
        bp = upload(session, &ui, &bp, path).await?;
    }
    ui.json(&bp)
}

pub async fn delete_buildpack(session: &mut Session, args: DeleteBuildpackArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    if !args.force && !prompt::confirm(&format!("Really delete the buildpack {}?", args.name))? {
        ui.say("Buildpack has not been deleted.");
        return Ok(());
    }
    ui.say(format!("Deleting buildpack {} as {}...", args.name, session.user_name()));
    let Some(bp) = lookup(session, &args.name).await? else {
        ui.warn(format!("Buildpack '{}' does not exist.", args.name));
        ui.ok();
        return Ok(());
    };
    session.delete_and_wait(&format!("/v3/buildpacks/{}", guid(&bp))).await?;
    ui.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_cf_columns_in_position_order() {
        let out = render_buildpacks(&[
            json!({"position": 1, "name": "a_bp", "stack": null, "enabled": true, "locked": false, "state": "READY", "filename": "a.zip"}),
            json!({"position": 2, "name": "b_bp", "stack": "cflinuxfs4", "enabled": false, "locked": true, "state": "AWAITING_UPLOAD", "filename": null}),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("position"), "{out}");
        assert!(lines[1].contains("a_bp") && lines[1].contains("READY") && lines[1].contains("a.zip"), "{out}");
        assert!(lines[2].contains("cflinuxfs4") && lines[2].contains("false") && lines[2].contains("true"), "{out}");
    }

    #[test]
    fn a_buildpack_is_a_directory_or_a_zip() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bp")).unwrap();
        std::fs::write(dir.path().join("bp/detect"), "#!/bin/sh\n").unwrap();
        let (file, zip) = zip_of(&dir.path().join("bp")).unwrap();
        assert_eq!(file, "bp.zip");
        assert!(zip.starts_with(b"PK"));
        std::fs::write(dir.path().join("notes.txt"), "words").unwrap();
        assert!(zip_of(&dir.path().join("notes.txt")).unwrap_err().to_string().contains("not a zip"));
        assert!(zip_of(&dir.path().join("missing")).is_err());
    }
}

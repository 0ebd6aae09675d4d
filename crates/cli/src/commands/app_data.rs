//! What an app carries besides its processes: `hearth env`, `set-env`, `unset-env`
//! (user environment variables), `droplets`, `packages` and `create-app-manifest`.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::commands::apps::{doing, find_app};
use crate::output::Ui;
use crate::output::table::render;
use crate::resources::{guid, with_query};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The app's name
    pub name: String,
    /// Print the app's environment document as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CreateManifestArgs {
    /// The app's name
    pub name: String,
    /// Where to write the manifest (default: ./APP_manifest.yml)
    #[arg(short = 'p', long = "path")]
    pub path: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct SetEnvArgs {
    /// The app's name
    pub name: String,
    /// The variable's name
    pub var: String,
    /// The variable's value
    pub value: String,
}

#[derive(Debug, Args)]
pub struct UnsetEnvArgs {
    /// The app's name
    pub name: String,
    /// The variable's name
    pub var: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The app's name
    pub name: String,
    /// Print the resources as JSON
    #[arg(long)]
    pub json: bool,
}

const RESTAGE_TIP: &str = "TIP: Use 'hearth restage {}' to ensure your env variable changes take effect.";

pub async fn env(session: &mut Session, args: EnvArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    ui.say(doing(session, &format!("Getting env variables for app {}", args.name)));
    let env = session.get(&format!("/v3/apps/{}/env", guid(&app))).await?;
    ui.ok();
    ui.say("");
    ui.print(render_env(&env));
    ui.json(&env)
}

/// The environment document as `cf env` prints it.
pub fn render_env(env: &Value) -> String {
    let mut out = String::new();
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    for (key, title) in [("system_env_json", "System-Provided"), ("application_env_json", "")] {
        if let Some(map) = env[key].as_object().filter(|m| !m.is_empty()) {
            if !title.is_empty() {
                out.push_str(&format!("{title}:\n"));
            }
            for (k, v) in map {
                out.push_str(&format!("{}\n", pretty(&json!({ k: v }))));
            }
            out.push('\n');
        }
    }
    for (key, title, none) in [
        ("environment_variables", "User-Provided", "No user-provided env variables have been set"),
        ("running_env_json", "Running Environment Variable Groups", "No running env variables have been set"),
        ("staging_env_json", "Staging Environment Variable Groups", "No staging env variables have been set"),
    ] {
        match env[key].as_object().filter(|m| !m.is_empty()) {
            Some(map) => {
                out.push_str(&format!("{title}:\n"));
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for k in keys {
                    let v = &map[k];
                    let text = v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
                    out.push_str(&format!("{k}: {text}\n"));
                }
            }
            None => out.push_str(&format!("{none}\n")),
        }
        out.push('\n');
    }
    out
}

/// `cf create-app-manifest`: the app's current settings as a manifest file.
pub async fn create_manifest(session: &mut Session, args: CreateManifestArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    ui.say(doing(session, &format!("Creating an app manifest from current settings of app {}", args.name)));
    let response = session.request(reqwest::Method::GET, &format!("/v3/apps/{}/manifest", guid(&app)), None).await?;
    let path = args.path.unwrap_or_else(|| std::path::PathBuf::from(format!("./{}_manifest.yml", args.name)));
    std::fs::write(&path, &response.body)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}. Pick another place with -p PATH.", path.display()))?;
    ui.ok();
    ui.say("");
    ui.say(format!("Manifest file created successfully at {}", path.display()));
    Ok(())
}

pub async fn set_env(session: &mut Session, args: SetEnvArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    ui.say(doing(session, &format!("Setting env variable {} for app {}", args.var, args.name)));
    let body = json!({"var": {args.var.clone(): args.value}});
    session.patch(&format!("/v3/apps/{}/environment_variables", guid(&app)), &body).await?;
    ui.ok();
    ui.say(RESTAGE_TIP.replace("{}", &args.name));
    Ok(())
}

pub async fn unset_env(session: &mut Session, args: UnsetEnvArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    ui.say(doing(session, &format!("Removing env variable {} from app {}", args.var, args.name)));
    let app_guid = guid(&app).to_owned();
    let env = session.get(&format!("/v3/apps/{app_guid}/env")).await?;
    if env["environment_variables"].get(&args.var).is_none() {
        ui.ok();
        ui.say(format!("Env variable {} was not set.", args.var));
        return Ok(());
    }
    let body = json!({"var": {args.var.clone(): null}});
    session.patch(&format!("/v3/apps/{app_guid}/environment_variables"), &body).await?;
    ui.ok();
    ui.say(RESTAGE_TIP.replace("{}", &args.name));
    Ok(())
}

pub async fn droplets(session: &mut Session, args: ListArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    ui.say(doing(session, &format!("Getting droplets of app {}", args.name)));
    ui.say("");
    let app_guid = guid(&app).to_owned();
    let droplets = session
        .list(&with_query("/v3/droplets", &[("app_guids", app_guid.as_str()), ("order_by", "-created_at")])?)
        .await?;
    if droplets.is_empty() {
        ui.say("No droplets found.");
        return ui.json(&json!([]));
    }
    let current = match session.get(&format!("/v3/apps/{app_guid}/droplets/current")).await {
        Ok(droplet) => guid(&droplet).to_owned(),
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_not_found) => String::new(),
        Err(e) => return Err(e),
    };
    let mut rows = vec![["guid", "state", "created"].map(String::from).to_vec()];
    for droplet in &droplets {
        let mark = if guid(droplet) == current { " (current)" } else { "" };
        rows.push(vec![
            format!("{}{mark}", guid(droplet)),
            droplet["state"].as_str().unwrap_or_default().to_ascii_lowercase(),
            droplet["created_at"].as_str().unwrap_or_default().to_owned(),
        ]);
    }
    ui.print(render(&rows));
    ui.json(&Value::Array(droplets))
}

pub async fn packages(session: &mut Session, args: ListArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    ui.say(doing(session, &format!("Listing packages of app {}", args.name)));
    ui.say("");
    let path = with_query("/v3/packages", &[("app_guids", guid(&app)), ("order_by", "-created_at")])?;
    let packages = session.list(&path).await?;
    if packages.is_empty() {
        ui.say("No packages found.");
        return ui.json(&json!([]));
    }
    let mut rows = vec![["guid", "type", "state", "created"].map(String::from).to_vec()];
    for package in &packages {
        rows.push(vec![
            guid(package).to_owned(),
            package["type"].as_str().unwrap_or_default().to_owned(),
            package["state"].as_str().unwrap_or_default().to_ascii_lowercase(),
            package["created_at"].as_str().unwrap_or_default().to_owned(),
        ]);
    }
    ui.print(render(&rows));
    ui.json(&Value::Array(packages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_prints_groups_and_sorted_user_variables() {
        let env = json!({"system_env_json": {"VCAP_SERVICES": {}}, "application_env_json": {"VCAP_APPLICATION": {"name": "w"}},
            "environment_variables": {"B": "2", "A": "1"}, "running_env_json": {}, "staging_env_json": null});
        let out = render_env(&env);
        assert!(out.contains("System-Provided:\n{\n  \"VCAP_SERVICES\": {}\n}"), "{out}");
        assert!(out.contains("User-Provided:\nA: 1\nB: 2\n"), "{out}");
        assert!(out.contains("No running env variables have been set"), "{out}");
        assert!(out.contains("No staging env variables have been set"), "{out}");
    }
}

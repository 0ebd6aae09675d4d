//! The first app: on a platform's first start with containers, `hearth server` pushes a
//! small static site, `hello`, into org `demo`, space `dev`, the way a newcomer would — by
//! running its own binary's `hearth push` with a client home under the data directory —
//! so the README's one command ends with an app to open. `--no-sample-app` skips it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, ensure};

/// The sample app's name (and host name).
pub const NAME: &str = "hello";

const INDEX: &str = "<!doctype html>
<title>Hearth</title>
<h1>Hello from Hearth</h1>
<p>This page is an app: a static site pushed with <code>hearth push hello -p SITE</code> into org
<code>demo</code>, space <code>dev</code>, staged by the built-in <code>staticfile_buildpack</code> and
served through the router by its host name.</p>
<p>Push your own: <code>hearth login -a API -u admin</code>, then <code>hearth push NAME -p DIR</code>
(or <code>cf push</code>). <code>hearth logs hello --recent</code> shows this request.</p>
";

/// Where the first app can be opened, for the banner.
pub fn url(app_domain: &str, front: &str) -> String {
    let port = front.rsplit_once(':').map(|(_, p)| p).filter(|p| *p != "80");
    match port {
        Some(port) => format!("http://{NAME}.{app_domain}:{port}/"),
        None => format!("http://{NAME}.{app_domain}/"),
    }
}

/// Pushes the sample app against `api` as `admin`; logs the outcome.
pub async fn push(api: String, password: String, data_dir: PathBuf) {
    match try_push(&api, &password, &data_dir).await {
        Ok(()) => tracing::info!(app = NAME, "the first app is running"),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not push the first app (push your own with hearth push)")
        }
    }
}

async fn try_push(api: &str, password: &str, data_dir: &Path) -> anyhow::Result<()> {
    let dir = data_dir.join("sample-app");
    let site = dir.join("site");
    tokio::fs::create_dir_all(&site).await?;
    tokio::fs::write(site.join("index.html"), INDEX).await?;
    let hearth = std::env::current_exe().context("cannot find the hearth binary")?;
    let site = site.to_string_lossy().into_owned();
    let steps: [&[&str]; 6] = [
        &["login", "-a", api, "-u", "admin", "-p", password],
        &["create-org", "demo"],
        &["target", "-o", "demo"],
        &["create-space", "dev"],
        &["target", "-s", "dev"],
        &["push", NAME, "-p", &site],
    ];
    for args in steps {
        let out = tokio::process::Command::new(&hearth)
            .args(args)
            .env("HEARTH_HOME", dir.join("home"))
            .stdin(Stdio::null())
            .output()
            .await?;
        let shown = if args[0] == "login" { "login" } else { args[0] };
        ensure!(
            out.status.success(),
            "hearth {shown} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_the_front_port_unless_it_is_80() {
        assert_eq!(url("apps.localhost", "127.0.0.1:8080"), "http://hello.apps.localhost:8080/");
        assert_eq!(url("apps.example.com", "0.0.0.0:80"), "http://hello.apps.example.com/");
    }
}

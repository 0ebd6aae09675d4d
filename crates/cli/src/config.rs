//! The client's saved state: which API is targeted, the tokens, and the
//! targeted org and space. Stored as JSON in `$HEARTH_HOME/config.json`
//! (default `~/.hearth/config.json`), readable only by its owner.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// A named resource the user has targeted (an org or a space).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targeted {
    pub name: String,
    pub guid: String,
}

/// Everything the client remembers between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The API endpoint, e.g. `http://127.0.0.1:8080` (no trailing slash).
    pub api: Option<String>,
    /// The CF V3 API version the endpoint advertises.
    pub api_version: Option<String>,
    /// The login server (`links.login` of the root document).
    pub login_url: Option<String>,
    /// The UAA server that issues tokens.
    pub uaa_url: Option<String>,
    pub skip_ssl_validation: bool,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub token_type: Option<String>,
    /// True when the tokens came from a client_credentials grant.
    pub client_credentials: bool,
    /// The client id used for client_credentials logins.
    pub client_id: Option<String>,
    /// The client secret, kept (like the cf CLI does) so an expired
    /// client_credentials token can be renewed: there is no refresh token.
    pub client_secret: Option<String>,
    pub org: Option<Targeted>,
    pub space: Option<Targeted>,
}

impl Config {
    /// Where the config lives: `$HEARTH_HOME/config.json`, else `~/.hearth/config.json`.
    pub fn default_path() -> Result<PathBuf> {
        if let Some(home) = std::env::var_os("HEARTH_HOME").filter(|h| !h.is_empty()) {
            return Ok(PathBuf::from(home).join("config.json"));
        }
        let home = dirs::home_dir()
            .context("cannot find your home directory; set HEARTH_HOME to a directory for the hearth config")?;
        Ok(home.join(".hearth").join("config.json"))
    }

    /// Reads the config; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the config file {} is not valid JSON; fix or delete it, then run 'hearth api' again",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the config atomically, readable only by its owner.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = path.with_extension("json.tmp");
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        let json = serde_json::to_vec_pretty(self).context("cannot encode the config")?;
        file.write_all(&json)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }

    /// True when there is a token to send.
    pub fn is_logged_in(&self) -> bool {
        self.access_token.is_some()
    }

    /// Forgets the tokens and the target (what `logout` does).
    pub fn clear_session(&mut self) {
        self.access_token = None;
        self.refresh_token = None;
        self.token_type = None;
        self.client_credentials = false;
        self.client_id = None;
        self.client_secret = None;
        self.org = None;
        self.space = None;
    }

    /// The `Authorization` header value for the current access token.
    pub fn authorization(&self) -> Option<String> {
        let token = self.access_token.as_deref()?;
        let kind = self.token_type.as_deref().unwrap_or("bearer");
        Some(format!("{kind} {token}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-cli-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("nested").join("config.json");
        let config = Config {
            api: Some("http://127.0.0.1:9".into()),
            api_version: Some("3.180.0".into()),
            login_url: Some("http://127.0.0.1:9/login".into()),
            uaa_url: Some("http://127.0.0.1:9/uaa".into()),
            skip_ssl_validation: true,
            access_token: Some("a.b.c".into()),
            refresh_token: Some("r".into()),
            token_type: Some("bearer".into()),
            client_credentials: true,
            client_id: Some("admin".into()),
            client_secret: Some("s".into()),
            org: Some(Targeted { name: "o".into(), guid: "1".into() }),
            space: Some(Targeted { name: "s".into(), guid: "2".into() }),
        };
        config.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_file_is_empty_config() {
        let dir = temp_dir("missing");
        let config = Config::load(&dir.join("config.json")).unwrap();
        assert_eq!(config, Config::default());
        assert!(!config.is_logged_in());
    }

    #[test]
    fn logout_forgets_tokens_and_target_but_not_api() {
        let mut config = Config {
            api: Some("http://x".into()),
            access_token: Some("t".into()),
            org: Some(Targeted { name: "o".into(), guid: "1".into() }),
            ..Config::default()
        };
        config.clear_session();
        assert_eq!(config.api.as_deref(), Some("http://x"));
        assert!(config.access_token.is_none() && config.org.is_none());
    }

    #[test]
    fn authorization_uses_token_type() {
        let config = Config { access_token: Some("t".into()), ..Config::default() };
        assert_eq!(config.authorization().as_deref(), Some("bearer t"));
    }
}

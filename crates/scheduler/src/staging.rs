//! What a staging task carries (Diego's staging task for the buildpack lifecycle): the
//! blobs a cell fetches to build a droplet without the API's filesystem, and the result it
//! records on the task when it is done. Plain data; the cell and the API agree on it here.

/// What kind of work a task is. Stored tasks from before kinds existed are commands.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskKind {
    /// The definition's `command` in a container on the droplet (`cf run-task`).
    #[default]
    Command,
    /// A buildpack staging: the builder runs on the cell the auction chose (boxed: tasks
    /// travel in every task event, and most are commands).
    Staging(Box<StagingSpec>),
}

/// One buildpack to stage with: its name (as the droplet records it) and its zip's blob key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagingBuildpack {
    pub name: String,
    pub blob_key: String,
}

/// Everything a cell needs to stage: blob keys, not paths. The app's guid (the definition's
/// `app_guid`) keys the build cache and the `STG` lines; the memory and disk limits are the
/// definition's; its `env` is the builder's environment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagingSpec {
    /// The build this staging makes a droplet for.
    pub build_guid: String,
    /// The package zip's key in the blobstore.
    pub package_key: String,
    /// In the order to detect among (`detect`) or to run (supply…, then finalize).
    pub buildpacks: Vec<StagingBuildpack>,
    /// Detect among `buildpacks` (the app names none) instead of running them all.
    pub detect: bool,
    /// The longest the builder may run, in seconds.
    pub timeout_secs: u64,
}

impl StagingSpec {
    /// Why the spec cannot be staged, if it cannot.
    pub fn problem(&self) -> Option<&'static str> {
        if self.build_guid.is_empty() {
            Some("a staging task needs its build's guid")
        } else if self.package_key.is_empty() {
            Some("a staging task needs the package's blob key")
        } else if self.buildpacks.is_empty() {
            Some("a staging task needs at least one buildpack")
        } else if self.buildpacks.iter().any(|b| b.name.is_empty() || b.blob_key.is_empty()) {
            Some("every buildpack of a staging task needs a name and a blob key")
        } else if self.timeout_secs == 0 {
            Some("a staging task needs a positive timeout")
        } else {
            None
        }
    }
}

/// What a successful staging task records as its result (JSON in the task's `result`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagingResult {
    /// The droplet as a layer (`sha256:…`), laid over the stack for instances.
    pub layer: String,
    /// The droplet tgz's key in the blobstore and its SHA-256.
    pub droplet_key: String,
    pub droplet_sha256: String,
    /// The buildpack that finalized (or compiled) the app.
    pub buildpack: String,
    pub detect_output: String,
    /// `bin/release`'s YAML (empty if it has none).
    pub release_yaml: String,
    /// The app's `Procfile`, if it has one.
    pub procfile: Option<String>,
    /// Whether the build cache was stored for the app's next staging.
    pub cache_stored: bool,
}

impl StagingResult {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a staging result serialises")
    }

    pub fn from_json(text: &str) -> Result<StagingResult, String> {
        serde_json::from_str(text).map_err(|e| format!("the staging task's result is unreadable: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_without_a_kind_is_a_command_and_staging_round_trips() {
        let old: TaskKind = serde_json::from_value(serde_json::json!({"type": "command"})).unwrap();
        assert_eq!(old, TaskKind::Command);
        let spec = StagingSpec {
            build_guid: "b".into(),
            package_key: "p".into(),
            buildpacks: vec![StagingBuildpack { name: "static".into(), blob_key: "k".into() }],
            detect: true,
            timeout_secs: 900,
        };
        let kind = TaskKind::Staging(Box::new(spec.clone()));
        let text = serde_json::to_string(&kind).unwrap();
        assert_eq!(serde_json::from_str::<TaskKind>(&text).unwrap(), kind);
        assert_eq!(spec.problem(), None);
        assert!(StagingSpec { buildpacks: vec![], ..spec.clone() }.problem().unwrap().contains("buildpack"));
        assert!(StagingSpec { timeout_secs: 0, ..spec }.problem().unwrap().contains("timeout"));
        assert!(StagingResult::from_json("{").unwrap_err().contains("unreadable"));
    }
}

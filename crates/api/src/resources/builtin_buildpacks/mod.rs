//! The buildpacks a platform has from its first start, written for Hearth as plain scripts
//! (the files beside this module) that use what the stack has (python3, node, npm), so
//! staging needs no network: `staticfile_buildpack`, `nodejs_buildpack`, `python_buildpack`
//! and `binary_buildpack`, in Cloud Foundry's order.

use hearth_blobstore::Namespace;
use hearth_store::{self as store, Buildpack, Cond, Value as SqlValue};

use super::buildpacks::place;
use crate::ApiState;
use crate::error::{ApiError, ApiResult};

/// `(path in the buildpack, content)`; every file is installed executable.
type Files = &'static [(&'static str, &'static str)];

macro_rules! lifecycle {
    ($dir:literal) => {
        [
            ("bin/detect", include_str!(concat!($dir, "/detect"))),
            ("bin/supply", include_str!(concat!($dir, "/supply"))),
            ("bin/finalize", include_str!(concat!($dir, "/finalize"))),
            ("bin/release", include_str!(concat!($dir, "/release"))),
        ]
    };
}

/// Serves an app with a `Staticfile` or an `index.html` with a small web server on the
/// stack's python3 and the Staticfile options (`root`, `pushstate: enabled`, `directory:
/// visible`; precompressed `.gz` files for clients that take gzip).
const STATICFILE: Files = &{
    let [d, s, f, r] = lifecycle!("staticfile");
    [d, s, f, r, ("server.py", include_str!("staticfile/server.py"))]
};

/// Detects `package.json`; uses vendored `node_modules` as they are and installs what is
/// missing with the stack's npm (a reachable registry needed); the web process is
/// `scripts.start`, else `node server.js`.
const NODEJS: Files = &{
    let [d, s, f, r] = lifecycle!("nodejs");
    [
        d,
        s,
        f,
        r,
        ("lib/missing.js", include_str!("nodejs/lib/missing.js")),
        ("lib/release.js", include_str!("nodejs/lib/release.js")),
    ]
};

/// Detects `requirements.txt`, `setup.py`, `Pipfile`, `pyproject.toml` or `app.py`;
/// installs `requirements.txt` with the stack's pip into the app's deps directory (from
/// vendored wheels in `vendor/` with no index, else from `PIP_INDEX_URL`); the web process
/// is `python3 app.py`.
const PYTHON: Files = &lifecycle!("python");

/// Apps that bring their own executable: detects nothing (an app names it), stages nothing,
/// leaves the start command to the `Procfile` or the push's command.
const BINARY: Files = &lifecycle!("binary");

/// The files of built-in buildpack `name` (`bin/detect`, …), e.g. to run them by hand.
pub fn files(name: &str) -> Option<Files> {
    match name {
        "staticfile_buildpack" => Some(STATICFILE),
        "nodejs_buildpack" => Some(NODEJS),
        "python_buildpack" => Some(PYTHON),
        "binary_buildpack" => Some(BINARY),
        _ => None,
    }
}

/// Installs the built-ins a platform lacks by name (an operator's changes to the others
/// stay): `staticfile_buildpack` first, `binary_buildpack` last, the others before it.
pub async fn install_builtin(state: &ApiState) -> ApiResult<()> {
    install_one(state, "staticfile_buildpack", STATICFILE, Some(1)).await?;
    for (name, files) in [("nodejs_buildpack", NODEJS), ("python_buildpack", PYTHON)] {
        let binary = find(state, "binary_buildpack").await?;
        install_one(state, name, files, binary.map(|b| b.position)).await?;
    }
    install_one(state, "binary_buildpack", BINARY, None).await
}

async fn find(state: &ApiState, name: &str) -> ApiResult<Option<Buildpack>> {
    let mut conn = state.store.conn().await?;
    Ok(store::find_one(&mut conn, &[Cond::Eq("name", SqlValue::Text(name.into()))]).await?)
}

async fn install_one(state: &ApiState, name: &str, files: Files, position: Option<i64>) -> ApiResult<()> {
    if find(state, name).await?.is_some() {
        return Ok(());
    }
    let internal = |e: std::io::Error| ApiError::Internal(e.to_string());
    std::fs::create_dir_all(&state.work_dir).map_err(internal)?;
    let work = tempfile::TempDir::new_in(&state.work_dir).map_err(internal)?;
    let dir = work.path().join(name);
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap_or(&dir)).map_err(internal)?;
        std::fs::write(&file, text).map_err(internal)?;
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755)).map_err(internal)?;
    }
    let zip_path = work.path().join(format!("{name}.zip"));
    let out = std::fs::File::create(&zip_path).map_err(internal)?;
    hearth_blobstore::archive::create_zip(&dir, out).map_err(|e| ApiError::Internal(e.to_string()))?;
    let blob =
        state.blobs.put_file(Namespace::Buildpacks, &zip_path).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut tx = state.store.begin().await?;
    let now = store::now();
    let mut b = Buildpack {
        guid: store::new_guid(),
        name: name.into(),
        stack: Some("cflinuxfs4".into()),
        position: 0,
        enabled: true,
        locked: false,
        state: "READY".into(),
        filename: Some(format!("{name}.zip")),
        blob_key: Some(blob.key),
        sha256: Some(blob.sha256),
        created_at: now.clone(),
        updated_at: now,
    };
    place(&mut tx, &mut b, position).await?;
    store::insert(&mut tx, &b).await?;
    tx.commit().await?;
    Ok(())
}

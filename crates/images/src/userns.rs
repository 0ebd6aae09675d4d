//! A store kept by an ordinary user (rootless mode): layer files must belong to the ids a
//! container sees (a file of container uid N appears as N inside), but an ordinary user can
//! neither `chown` to another id nor remove files that other ids own. So the work that
//! needs those ids runs in a helper process inside a user namespace with the containers' own
//! id map — container root is the user itself, container ids 1.. its subordinate range —
//! set up by util-linux's `unshare` with the setuid `newuidmap`/`newgidmap` (Debian's
//! `uidmap`). There the helper is root over every mapped id: it unpacks a layer as root
//! does (ownership as the tar says, overlayfs whiteouts as 0/0 character devices, which the
//! kernel lets anyone make since 5.8) and removes trees whatever container id owns their
//! files. Overlay metadata is kept in `user.overlay.*` xattrs, which a container's
//! `userxattr` overlay mount reads; the layer's own `user.overlay.*` xattrs are dropped as
//! `trusted.*` ones are.
//!
//! The helper is the `hearth` binary (`images-helper`, [`helper_main`]): `unpack DEST` reads
//! the tar on stdin and answers the [`UnpackReport`] as JSON on stdout; `remove PATH`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use crate::extract::{OverlayXattrs, UnpackReport, unpack_layer_with};
use crate::{Error, Result};

/// The user namespace a rootless store works in: the id map of its containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNamespace {
    /// The first subordinate uid and gid (container id 1) and how many there are.
    pub sub_uid: u32,
    pub sub_gid: u32,
    pub count: u32,
    /// The binary whose `images-helper` subcommand runs [`helper_main`].
    pub helper: PathBuf,
}

/// The subcommand the helper binary answers to.
pub const HELPER_COMMAND: &str = "images-helper";

impl UserNamespace {
    /// `unshare` running the helper with `args` in the namespace.
    fn command(&self, args: &[&std::ffi::OsStr]) -> Command {
        let mut command = Command::new("unshare");
        command
            .arg("--map-root-user")
            // util-linux 2.38's form (outer,inner,count); later versions still accept it.
            .arg(format!("--map-users={},1,{}", self.sub_uid, self.count))
            .arg(format!("--map-groups={},1,{}", self.sub_gid, self.count))
            .arg("--")
            .arg(&self.helper)
            .arg(HELPER_COMMAND)
            .args(args);
        command
    }

    /// Unpacks `tarball` into the empty directory `dest` as [`unpack_layer`] does, in the
    /// namespace. Blocking.
    pub fn unpack(&self, tarball: impl Read, dest: &Path) -> Result<UnpackReport> {
        let failed =
            |why: String| Error::Rootless(format!("unpacking into {} in a user namespace: {why}", dest.display()));
        let mut child = self
            .command(&["unpack".as_ref(), dest.as_os_str()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot run unshare (util-linux): {e}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut tarball = tarball;
        // A helper that stopped reading (it refused the layer) closes the pipe: its stderr says why.
        let copied = std::io::copy(&mut tarball, &mut stdin).and_then(|_| stdin.flush());
        drop(stdin);
        let output = child.wait_with_output().map_err(|e| failed(e.to_string()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(match stderr.strip_prefix(REFUSED) {
                Some(reason) => {
                    Error::Malformed { what: format!("layer for {}", dest.display()), reason: reason.into() }
                }
                None => failed(format!("{}: {stderr}", output.status)),
            });
        }
        copied.map_err(Error::io(dest))?;
        serde_json::from_slice(&output.stdout).map_err(|e| failed(format!("unreadable report: {e}")))
    }

    /// Removes a file or tree whatever container ids own what is in it; a missing path is
    /// fine. Blocking.
    pub fn remove(&self, path: &Path) -> Result<()> {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        let output =
            self.command(&["remove".as_ref(), path.as_os_str()]).stdin(Stdio::null()).output().map_err(|e| {
                Error::Rootless(format!("removing {}: cannot run unshare (util-linux): {e}", path.display()))
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(Error::Rootless(format!("removing {} in a user namespace: {}", path.display(), stderr.trim())));
        }
        Ok(())
    }
}

/// What the helper prints before a layer's refusal, so the caller tells it from a failure.
const REFUSED: &str = "refused: ";

/// The helper's side, in the namespace: `unpack DEST` or `remove PATH`.
pub fn helper_main(args: &[OsString]) -> ExitCode {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(OsString::as_os_str).collect();
    let result = match args.as_slice() {
        [op, dest] if *op == "unpack" => {
            match unpack_layer_with(std::io::stdin().lock(), Path::new(dest), OverlayXattrs::User) {
                Ok(report) => {
                    let json = serde_json::to_vec(&report).expect("reports serialise");
                    std::io::stdout().write_all(&json).map_err(|e| e.to_string())
                }
                Err(e @ (Error::HostileLayer { .. } | Error::Malformed { .. })) => Err(format!("{REFUSED}{e}")),
                Err(e) => Err(e.to_string()),
            }
        }
        [op, path] if *op == "remove" => crate::store::remove_any(Path::new(path)).map_err(|e| e.to_string()),
        _ => Err(format!("usage: {HELPER_COMMAND} unpack DEST | remove PATH")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Removes `path` as the store's user, through the namespace when it has one (files there
/// may belong to container ids).
pub(crate) fn remove_tree(namespace: Option<&UserNamespace>, path: &Path) -> Result<()> {
    match namespace {
        Some(ns) => ns.remove(path),
        None => crate::store::remove_any(path),
    }
}

//! What a create writes before a keeper takes over: the runtime's directories, the
//! container's directory with its `spec.json`, and the OCI bundle (`config.json` without
//! the seccomp profile, which goes in compiled). All of it is plain blocking file work done
//! in one go (`Runtime::create` runs `prepare` and then `write` on one blocking thread
//! rather than a dozen async file calls, each a thread hand-off).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::Error;
use crate::id::ContainerId;
use crate::layout::Layout;
use crate::seccomp_bpf;

/// The files of one container, serialised and ready to write.
pub(crate) struct Bundle {
    pub spec_json: Vec<u8>,
    pub config_json: Vec<u8>,
    pub seccomp_program: Option<std::sync::Arc<Vec<u8>>>,
}

/// Makes the runtime's directories (0711: container processes run as mapped uids and must
/// traverse to their bundle), refuses a rootfs the container could not reach (when
/// `rootfs` is given) and makes the container's directory: `AlreadyExists` if it is there.
pub(crate) fn prepare(layout: &Layout, id: &ContainerId, rootfs: Option<&Path>) -> Result<(), Error> {
    if let Some(rootfs) = rootfs {
        check_rootfs(rootfs)?;
    }
    for dir in [layout.root().to_path_buf(), layout.containers(), layout.state_root()] {
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).map_err(Error::io(&dir))?;
    }
    let dir = layout.container_dir(id);
    match std::fs::create_dir(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists(id.clone())),
        other => other.map_err(Error::io(&dir)),
    }
}

/// Writes `spec.json` and the bundle into the container's directory.
pub(crate) fn write(layout: &Layout, id: &ContainerId, bundle: &Bundle) -> Result<(), Error> {
    let spec_file = layout.spec_file(id);
    std::fs::write(&spec_file, &bundle.spec_json).map_err(Error::io(&spec_file))?;
    let dir = layout.bundle(id);
    std::fs::create_dir(&dir).map_err(Error::io(&dir))?;
    if let Some(program) = &bundle.seccomp_program {
        let path = dir.join(seccomp_bpf::BPF_FILE);
        std::fs::write(&path, &***program).map_err(Error::io(&path))?;
    }
    let config_file = dir.join("config.json");
    std::fs::write(&config_file, &bundle.config_json).map_err(Error::io(&config_file))
}

/// The rootfs must be a directory the container's mapped root can reach: it is mounted
/// from inside the user namespace, where host root's directories count as "others".
fn check_rootfs(rootfs: &Path) -> Result<(), Error> {
    let refuse = |why: String| Err(Error::InvalidSpec(format!("rootfs {}: {why}", rootfs.display())));
    match std::fs::metadata(rootfs) {
        Ok(m) if m.is_dir() => {}
        _ => return refuse("not a directory".into()),
    }
    for dir in rootfs.ancestors() {
        let mode = std::fs::metadata(dir).map_err(Error::io(dir))?.permissions().mode();
        if mode & 0o001 == 0 {
            return refuse(format!("{} is not searchable by others (needs o+x, e.g. 0711)", dir.display()));
        }
    }
    Ok(())
}

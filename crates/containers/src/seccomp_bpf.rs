//! The seccomp profile compiled once into the BPF program the kernel runs, and loaded
//! into a container's process with one `seccomp(2)` call. libcontainer compiles a
//! profile with libseccomp in every container it creates (1.2–1.5 ms each here); the
//! runtime compiles it once, writes the program into each bundle ([`BPF_FILE`]) and hands
//! libcontainer a spec without the profile, and the helpers' executors load the program
//! right before `execve`, where libcontainer would have loaded it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

use crate::seccomp::EPERM;

/// The file in a container's bundle that holds its compiled filter.
pub const BPF_FILE: &str = "seccomp.bpf";

/// The last profile compiled and its program: a runtime gives every container the same
/// profile, so it is compiled once.
#[derive(Default)]
pub struct Compiled(Mutex<Option<(String, Arc<Vec<u8>>)>>);

impl Compiled {
    pub fn program(&self, profile: &LinuxSeccomp) -> Result<Arc<Vec<u8>>, String> {
        let key = serde_json::to_string(profile).map_err(|e| format!("seccomp profile: {e}"))?;
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, program)) = last.as_ref()
            && *k == key
        {
            return Ok(program.clone());
        }
        let program = Arc::new(compile(profile)?);
        *last = Some((key, program.clone()));
        Ok(program)
    }
}

/// A profile compiled by libseccomp into the classic BPF program the kernel runs, as
/// libcontainer would compile it (a rule whose action is the default is dropped, a syscall
/// this libseccomp does not know is skipped, arguments compared on one index go in one
/// rule each). The runtime compiles once and each container loads the program with one
/// `seccomp(2)` call ([`load`]); compiling took 1.2–1.5 ms per container.
pub fn compile(profile: &LinuxSeccomp) -> Result<Vec<u8>, String> {
    use libseccomp::{ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
    let fail = |what: &str, e: libseccomp::error::SeccompError| format!("seccomp {what}: {e}");
    if profile.architectures().as_ref().is_some_and(|a| !a.is_empty()) || profile.flags().is_some() {
        return Err("seccomp: architectures and flags are not supported by the compiled filter".into());
    }
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| fail("filter", e))?;
    ctx.set_ctl_nnp(false).map_err(|e| fail("no_new_privs attribute", e))?;
    for rule in profile.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        let compares = rule
            .args()
            .iter()
            .flatten()
            .map(|a| {
                let op = match a.op() {
                    LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                    LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
                    LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                    LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                    LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                    LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
                    LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(a.value_two().unwrap_or(0)),
                };
                ScmpArgCompare::new(a.index() as u32, op, a.value())
            })
            .collect::<Vec<_>>();
        let mut indexes: Vec<u32> = rule.args().iter().flatten().map(|a| a.index() as u32).collect();
        indexes.sort_unstable();
        let shared_index = indexes.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else { continue };
            let added = if compares.is_empty() {
                ctx.add_rule(act, syscall).map(|_| ())
            } else if shared_index {
                compares
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, syscall, std::slice::from_ref(c)).map(|_| ()))
            } else {
                ctx.add_rule_conditional(act, syscall, &compares).map(|_| ())
            };
            added.map_err(|e| fail(&format!("rule for {name}"), e))?;
        }
    }
    let mut out = tempfile_in_memory()?;
    ctx.export_bpf(&out).map_err(|e| fail("export", e))?;
    use std::io::{Read, Seek};
    let mut bpf = Vec::new();
    out.rewind().and_then(|_| out.read_to_end(&mut bpf)).map_err(|e| format!("seccomp export: {e}"))?;
    if bpf.is_empty() || !bpf.len().is_multiple_of(8) {
        return Err(format!("seccomp export: {} bytes is no BPF program", bpf.len()));
    }
    Ok(bpf)
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<libseccomp::ScmpAction, String> {
    use libseccomp::ScmpAction;
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno.unwrap_or(EPERM) as i32),
        LinuxSeccompAction::ScmpActKill => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        other => return Err(format!("seccomp: action {other:?} is not supported by the compiled filter")),
    })
}

/// An anonymous in-memory file (the export writes to a file descriptor).
fn tempfile_in_memory() -> Result<std::fs::File, String> {
    use std::os::fd::FromRawFd;
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"hearth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("seccomp export: memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a new descriptor nothing else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Installs a program from [`compile`] on the calling (single-threaded) process; it needs
/// no_new_privs set (or CAP_SYS_ADMIN), as libcontainer's own load does.
pub fn load(bpf: &[u8]) -> Result<(), String> {
    if bpf.is_empty() || !bpf.len().is_multiple_of(8) || bpf.len() / 8 > usize::from(u16::MAX) {
        return Err(format!("seccomp: {} bytes is no BPF program", bpf.len()));
    }
    let mut filter: Vec<libc::sock_filter> = bpf
        .chunks_exact(8)
        .map(|i| libc::sock_filter {
            code: u16::from_ne_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect();
    let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_mut_ptr() };
    // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) reads the program `program` points to, which
    // lives until the call returns.
    let loaded = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &program as *const libc::sock_fprog)
    };
    if loaded != 0 {
        return Err(format!("seccomp: loading the filter: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// A bundle's compiled filter ([`BPF_FILE`]). A bundle without one is from
/// before filters were compiled, and its spec must then hold the profile libcontainer
/// loads: a bundle with neither is refused.
pub fn of_bundle(bundle: &Path) -> Result<Option<Vec<u8>>, String> {
    let path = bundle.join(BPF_FILE);
    match std::fs::read(&path) {
        Ok(program) => Ok(Some(program)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let config = std::fs::read(bundle.join("config.json")).map_err(|e| format!("config.json: {e}"))?;
            let config: serde_json::Value = serde_json::from_slice(&config).map_err(|e| format!("config.json: {e}"))?;
            if config["linux"]["seccomp"].is_object() {
                Ok(None)
            } else {
                Err("the container has neither a compiled seccomp filter nor a seccomp profile".into())
            }
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::default_profile;

    /// Runs `check` in a forked child under the compiled default filter; answers its
    /// exit code.
    fn under_compiled_filter(check: fn() -> i32) -> i32 {
        let bpf = compile(&default_profile().unwrap()).unwrap();
        // SAFETY: the child only makes raw syscalls and leaves with _exit.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                // SAFETY: prctl and _exit in the forked child.
                unsafe {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || load(&bpf).is_err() {
                        libc::_exit(100);
                    }
                    libc::_exit(check());
                }
            }
            nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None).unwrap() {
                nix::sys::wait::WaitStatus::Exited(_, code) => code,
                other => panic!("the child ended with {other:?}"),
            },
        }
    }

    fn errno_of(result: libc::c_long) -> i32 {
        if result == -1 { std::io::Error::last_os_error().raw_os_error().unwrap_or(0) } else { 0 }
    }

    #[test]
    fn the_compiled_filter_refuses_what_the_profile_refuses_and_allows_the_rest() {
        let bpf = compile(&default_profile().unwrap()).unwrap();
        assert!(bpf.len() >= 8 * 100 && bpf.len().is_multiple_of(8), "{} bytes", bpf.len());
        assert!(load(&bpf[..7]).is_err() && load(&[]).is_err());
        // SAFETY (all checks): raw syscalls with plain integer arguments in the child.
        assert_eq!(
            under_compiled_filter(|| errno_of(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNS) })),
            libc::EPERM
        );
        assert_eq!(under_compiled_filter(|| errno_of(unsafe { libc::syscall(libc::SYS_clone3, 0, 0) })), libc::ENOSYS);
        assert_eq!(
            under_compiled_filter(|| errno_of(unsafe { libc::syscall(libc::SYS_personality, 0x1234) })),
            libc::EPERM
        );
        assert_eq!(
            under_compiled_filter(|| errno_of(unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) })),
            0
        );
        assert_eq!(under_compiled_filter(|| errno_of(unsafe { libc::syscall(libc::SYS_getpid) })), 0);
        // clone with a namespace flag is refused; without one it is allowed (the child exits at once).
        assert_eq!(
            under_compiled_filter(|| errno_of(unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    libc::CLONE_NEWNET as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
                    0,
                    0,
                    0,
                    0,
                )
            })),
            libc::EPERM
        );
        assert_eq!(
            under_compiled_filter(|| {
                // SAFETY: a fork-like clone; the new child leaves at once with _exit.
                let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) };
                if pid == 0 {
                    unsafe { libc::_exit(0) };
                }
                errno_of(pid)
            }),
            0
        );
    }

    #[test]
    fn a_profile_is_compiled_once_and_a_changed_one_again() {
        let cache = Compiled::default();
        let profile = default_profile().unwrap();
        let first = cache.program(&profile).unwrap();
        assert!(Arc::ptr_eq(&first, &cache.program(&profile).unwrap()));
        let mut other = profile.clone();
        other.set_default_errno_ret(Some(13));
        let changed = cache.program(&other).unwrap();
        assert!(!Arc::ptr_eq(&first, &changed) && *first != *changed);
    }

    #[test]
    fn a_bundle_needs_a_compiled_filter_or_a_profile_in_its_spec() {
        let bundle = std::env::temp_dir().join(format!("hearth-filter-test-{}", std::process::id()));
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(bundle.join("config.json"), r#"{"linux": {"namespaces": []}}"#).unwrap();
        assert!(of_bundle(&bundle).unwrap_err().contains("neither a compiled seccomp filter"));
        std::fs::write(bundle.join("config.json"), r#"{"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}}}"#)
            .unwrap();
        assert_eq!(of_bundle(&bundle).unwrap(), None);
        std::fs::write(bundle.join(BPF_FILE), [6u8, 0, 0, 0, 0, 0, 0xff, 0x7f]).unwrap();
        assert_eq!(of_bundle(&bundle).unwrap(), Some(vec![6u8, 0, 0, 0, 0, 0, 0xff, 0x7f]));
        std::fs::remove_dir_all(&bundle).unwrap();
    }
}

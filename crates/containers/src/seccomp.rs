//! The default seccomp profile: an allow-list (Docker's default profile, which Garden's is
//! built on) whose default action is `EPERM`.
//!
//! Left out on purpose, so they fail with `EPERM`: namespace creation and joining
//! (`unshare`, `setns`, and `clone` with any `CLONE_NEW*` flag), mounting (`mount`,
//! `umount2`, `pivot_root`, the new mount API), kernel modules, `kexec`, `bpf`,
//! `perf_event_open`, `ptrace`, keyrings, `reboot`, swap, clock setting, `acct`,
//! `quotactl`, `userfaultfd` and `open_by_handle_at` (the "shocker" escape).
//! `clone3` gets `ENOSYS` instead (its flags live in memory that seccomp cannot read),
//! so C libraries fall back to `clone`, which is checked.

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall,
    LinuxSyscallBuilder,
};

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET`.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

pub(crate) const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// Allowed without conditions.
pub const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chroot",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_getfd",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socket",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// `personality(2)` personas a program may ask for: Linux, its 32-bit variant, no
/// address randomisation (used by some debuggers and builds), and the query value.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The profile. It names no architectures, so it covers the native ABI only and the
/// kernel kills any process that makes a syscall through another ABI (e.g. 32-bit
/// `int 0x80` on x86-64). One ABI also keeps the filter small: with four, compiling it
/// took most of a container's creation time.
pub fn default_profile() -> Result<LinuxSeccomp, OciSpecError> {
    let mut syscalls = vec![allow(ALLOWED.iter().map(|s| s.to_string()).collect(), vec![])?];
    // clone: allowed only without namespace flags. libcontainer (following libseccomp)
    // reads SCMP_CMP_MASKED_EQ as `(arg & valueTwo) == value`.
    let no_namespace_flags = LinuxSeccompArgBuilder::default()
        .index(0usize)
        .value(0u64)
        .value_two(CLONE_NAMESPACE_FLAGS)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .build()?;
    syscalls.push(allow(vec!["clone".into()], vec![no_namespace_flags])?);
    for &persona in PERSONALITIES {
        let arg = LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(persona)
            .op(LinuxSeccompOperator::ScmpCmpEq)
            .build()?;
        syscalls.push(allow(vec!["personality".into()], vec![arg])?);
    }
    syscalls.push(
        LinuxSyscallBuilder::default()
            .names(vec!["clone3".to_string()])
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(ENOSYS)
            .build()?,
    );
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(EPERM)
        .syscalls(syscalls)
        .build()
}

fn allow(names: Vec<String>, args: Vec<oci_spec::runtime::LinuxSeccompArg>) -> Result<LinuxSyscall, OciSpecError> {
    let builder = LinuxSyscallBuilder::default().names(names).action(LinuxSeccompAction::ScmpActAllow);
    if args.is_empty() { builder.build() } else { builder.args(args).build() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORBIDDEN: &[&str] = &[
        "unshare",
        "setns",
        "mount",
        "umount2",
        "pivot_root",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "bpf",
        "perf_event_open",
        "ptrace",
        "keyctl",
        "add_key",
        "request_key",
        "reboot",
        "swapon",
        "open_by_handle_at",
        "userfaultfd",
        "fsopen",
        "fsmount",
        "move_mount",
        "open_tree",
        "settimeofday",
    ];

    #[test]
    fn default_is_eperm_and_dangerous_calls_are_not_allowed() {
        let profile = default_profile().unwrap();
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(EPERM));
        let allowed: Vec<&String> = profile
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow)
            .flat_map(|s| s.names())
            .collect();
        for name in FORBIDDEN {
            assert!(!allowed.iter().any(|a| a == name), "{name} must not be allowed");
        }
        for name in ["read", "write", "execve", "clone", "wait4", "exit_group"] {
            assert!(allowed.iter().any(|a| a.as_str() == name), "{name} must be allowed");
        }
    }

    #[test]
    fn clone_is_allowed_only_without_namespace_flags() {
        let profile = default_profile().unwrap();
        let clones: Vec<&LinuxSyscall> =
            profile.syscalls().as_ref().unwrap().iter().filter(|s| s.names().iter().any(|n| n == "clone")).collect();
        assert_eq!(clones.len(), 1, "clone has exactly one (conditional) rule");
        let args = clones[0].args().as_ref().expect("clone's rule is conditional");
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!((args[0].value(), args[0].value_two()), (0, Some(CLONE_NAMESPACE_FLAGS)));
        // Every CLONE_NEW* flag is inside the mask.
        for flag in [0x0002_0000u64, 0x0200_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000] {
            assert_eq!(flag & CLONE_NAMESPACE_FLAGS, flag);
        }
        let clone3 = profile.syscalls().as_ref().unwrap().iter().find(|s| s.names().iter().any(|n| n == "clone3"));
        assert_eq!(clone3.unwrap().errno_ret(), Some(ENOSYS));
    }
}

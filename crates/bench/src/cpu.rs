//! CPU time from `/proc/<pid>/stat`: this whole process's (servers and load generator
//! together), to show how many cores a target kept busy; its waited-for children's; another
//! process's (a registry serving both tools).

use std::time::Duration;

/// Ticks per second of `/proc` times (the kernel's fixed `USER_HZ`).
const USER_HZ: u64 = 100;

/// User plus system CPU time of this process so far; `None` off Linux.
pub fn process_time() -> Option<Duration> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?, 14)
}

/// User plus system CPU time of this process's children that were waited for.
pub fn children_time() -> Option<Duration> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?, 16)
}

/// User plus system CPU time of process `pid` so far.
pub fn time_of(pid: u32) -> Option<Duration> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?, 14)
}

/// Fields `field` and `field + 1` (user and system ticks; 14 for the process, 16 for its
/// children) as a duration.
fn parse_stat(stat: &str, field: usize) -> Option<Duration> {
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(field - 3);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_user_and_system_ticks() {
        let stat = "42 (hearth bench) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 70 30 20 0 4 0 1 1 1";
        assert_eq!(super::parse_stat(stat, 14), Some(std::time::Duration::from_secs(3)));
        assert_eq!(super::parse_stat(stat, 16), Some(std::time::Duration::from_secs(1)));
        assert_eq!(super::parse_stat("garbage", 14), None);
    }
}

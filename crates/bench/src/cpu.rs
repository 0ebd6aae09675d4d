//! The CPU time this whole process (servers and load generator together) has used,
//! from `/proc/self/stat`, to show how many cores a target kept busy.

use std::time::Duration;

/// Ticks per second of `/proc` times (the kernel's fixed `USER_HZ`).
const USER_HZ: u64 = 100;

/// User plus system CPU time of this process so far; `None` off Linux.
pub fn process_time() -> Option<Duration> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn parse_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // fields 3..=13
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_user_and_system_ticks() {
        let stat = "42 (hearth bench) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 1 1";
        assert_eq!(super::parse_stat(stat), Some(std::time::Duration::from_secs(3)));
        assert_eq!(super::parse_stat("garbage"), None);
    }
}

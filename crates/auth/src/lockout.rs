//! Account lockout as UAA applies it: too many failed logins within a window lock the
//! account for a while. Pure logic over failure times.

/// The lockout policy (UAA's defaults: 5 failures within 5 minutes lock for 5 minutes).
#[derive(Clone, Copy, Debug)]
pub struct LockoutPolicy {
    pub max_failures: usize,
    pub window_secs: i64,
    pub lockout_secs: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy { max_failures: 5, window_secs: 300, lockout_secs: 300 }
    }
}

impl LockoutPolicy {
    /// Whether an account whose failed attempts happened at `failures` (Unix seconds,
    /// any order) is locked at `now`.
    pub fn is_locked(&self, failures: &[i64], now: i64) -> bool {
        let mut recent: Vec<i64> =
            failures.iter().copied().filter(|t| now - t < self.window_secs + self.lockout_secs).collect();
        recent.sort_unstable();
        if recent.len() < self.max_failures {
            return false;
        }
        // Locked from the moment the last of `max_failures` failures within one window
        // happened, for `lockout_secs`.
        recent.windows(self.max_failures).any(|w| {
            let (first, last) = (w[0], w[self.max_failures - 1]);
            last - first < self.window_secs && now - last < self.lockout_secs
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_in_five_minutes_lock_for_five_minutes() {
        let p = LockoutPolicy::default();
        let fails = [1000, 1010, 1020, 1030];
        assert!(!p.is_locked(&fails, 1040));
        let fails = [1000, 1010, 1020, 1030, 1040];
        assert!(p.is_locked(&fails, 1041));
        assert!(p.is_locked(&fails, 1339));
        assert!(!p.is_locked(&fails, 1340));
    }

    #[test]
    fn failures_spread_wider_than_the_window_do_not_lock() {
        let p = LockoutPolicy::default();
        let fails = [0, 100, 200, 299, 400];
        assert!(!p.is_locked(&fails, 401));
    }
}

//! `.cfignore`: gitignore-style patterns (`*`, `?`, `**`, `[abc]`, a leading `/` or an
//! inner `/` anchors to the app root, a trailing `/` matches directories only, `!`
//! re-includes; the last matching pattern wins), plus the files cf never uploads.

/// What cf leaves out of every push.
const DEFAULT_IGNORES: &[&str] =
    &[".cfignore", ".DS_Store", ".git", ".gitignore", ".hg", ".svn", "_darcs", "manifest.yaml", "manifest.yml"];

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    anchored: bool,
    dir_only: bool,
    negate: bool,
}

/// The patterns of one `.cfignore` after the defaults.
#[derive(Debug, Clone)]
pub struct CfIgnore {
    rules: Vec<Rule>,
}

impl CfIgnore {
    /// Parses a `.cfignore`'s text (empty for none).
    pub fn new(text: &str) -> Self {
        let mut rules: Vec<Rule> = DEFAULT_IGNORES
            .iter()
            .map(|p| Rule { pattern: (*p).to_owned(), anchored: false, dir_only: false, negate: false })
            .collect();
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negate, line) = match line.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (dir_only, line) = match line.strip_suffix('/') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let anchored = line.contains('/');
            let pattern = line.trim_start_matches('/').to_owned();
            if pattern.is_empty() {
                continue;
            }
            rules.push(Rule { pattern, anchored, dir_only, negate });
        }
        Self { rules }
    }

    /// True when `path` (relative, `/`-separated) is left out. A left-out directory
    /// is not walked, so its contents need no separate check.
    pub fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        let base = path.rsplit('/').next().unwrap_or(path);
        let mut ignored = false;
        for rule in &self.rules {
            if rule.dir_only && !is_dir {
                continue;
            }
            let hit = if rule.anchored { glob(&rule.pattern, path) } else { glob(&rule.pattern, base) };
            if hit {
                ignored = !rule.negate;
            }
        }
        ignored
    }
}

/// Glob match: `*` and `?` stop at `/`, `**` crosses it, `[..]` is a class (`!`/`^` negates).
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    matches(&p, &t)
}

fn matches(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') if p.get(1) == Some(&'*') => {
            // `**/` also matches no directory at all.
            let rest = &p[2..];
            let rest_after_slash = rest.strip_prefix(&['/']).unwrap_or(rest);
            (0..=t.len()).any(|i| matches(rest, &t[i..]) || matches(rest_after_slash, &t[i..]))
        }
        Some('*') => {
            let rest = &p[1..];
            for i in 0..=t.len() {
                if matches(rest, &t[i..]) {
                    return true;
                }
                if t.get(i) == Some(&'/') {
                    return false;
                }
            }
            false
        }
        Some('?') => t.first().is_some_and(|c| *c != '/') && matches(&p[1..], &t[1..]),
        Some('[') => {
            let Some(close) = p.iter().skip(1).position(|c| *c == ']').map(|i| i + 1) else {
                return t.first() == Some(&'[') && matches(&p[1..], &t[1..]);
            };
            let Some(c) = t.first() else { return false };
            let class = &p[1..close];
            let (negated, class) = match class.first() {
                Some('!' | '^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != negated && *c != '/' && matches(&p[close + 1..], &t[1..])
        }
        Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && matches(&p[2..], &t[1..]),
        Some(c) => t.first() == Some(c) && matches(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ignored_at_any_depth() {
        let ignore = CfIgnore::new("");
        assert!(ignore.is_ignored(".git", true));
        assert!(ignore.is_ignored("sub/.DS_Store", false));
        assert!(ignore.is_ignored("manifest.yml", false));
        assert!(!ignore.is_ignored("src/main.rs", false));
    }

    #[test]
    fn patterns_follow_gitignore_rules() {
        let ignore =
            CfIgnore::new("*.log\n/tmp\nbuild/\ndocs/*.md\n**/cache/**\n!important.log\nfile[0-9].txt\n\\#x\n");
        assert!(ignore.is_ignored("a.log", false));
        assert!(ignore.is_ignored("deep/b.log", false));
        assert!(!ignore.is_ignored("important.log", false));
        assert!(ignore.is_ignored("tmp", true));
        assert!(!ignore.is_ignored("src/tmp", true), "a leading / anchors to the root");
        assert!(ignore.is_ignored("build", true));
        assert!(!ignore.is_ignored("build", false), "a trailing / matches directories only");
        assert!(ignore.is_ignored("docs/a.md", false));
        assert!(!ignore.is_ignored("docs/sub/a.md", false), "* does not cross /");
        assert!(ignore.is_ignored("x/cache/y", false));
        assert!(ignore.is_ignored("file7.txt", false));
        assert!(!ignore.is_ignored("filex.txt", false));
        assert!(ignore.is_ignored("#x", false));
    }

    #[test]
    fn globs() {
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "a/c"));
        assert!(glob("**/x", "x"));
        assert!(glob("**/x", "a/b/x"));
        assert!(glob("a/**", "a/b/c"));
        assert!(glob("[!a]b", "cb"));
        assert!(!glob("[!a]b", "ab"));
    }
}

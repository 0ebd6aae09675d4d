//! The subset of SCIM filter expressions UAA clients send:
//! `attr eq "v"`, `co`, `sw`, `pr`, joined by `and` / `or` (and binds tighter),
//! compared case-insensitively as UAA does for user names.

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Compare { attr: String, op: Op, value: String },
    Present(String),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Eq,
    Co,
    Sw,
}

fn tokenize(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut v = String::from("\"");
            loop {
                match chars.next() {
                    Some('\\') => v.push(chars.next().ok_or("unterminated string")?),
                    Some('"') => break,
                    Some(ch) => v.push(ch),
                    None => return Err("unterminated string in filter".into()),
                }
            }
            out.push(v);
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            chars.next();
        } else {
            let mut w = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '(' || ch == ')' {
                    break;
                }
                w.push(ch);
                chars.next();
            }
            out.push(w);
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }
    fn next(&mut self) -> Result<String, String> {
        let t = self.tokens.get(self.pos).cloned().ok_or("unexpected end of filter")?;
        self.pos += 1;
        Ok(t)
    }
    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("or")) {
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.term()?;
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("and")) {
            self.pos += 1;
            left = Filter::And(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }
    fn term(&mut self) -> Result<Filter, String> {
        let attr = self.next()?;
        if attr == "(" {
            let f = self.or()?;
            return match self.next()?.as_str() {
                ")" => Ok(f),
                other => Err(format!("expected ')' but found '{other}'")),
            };
        }
        let op = self.next()?.to_ascii_lowercase();
        if op == "pr" {
            return Ok(Filter::Present(attr));
        }
        let op = match op.as_str() {
            "eq" => Op::Eq,
            "co" => Op::Co,
            "sw" => Op::Sw,
            other => return Err(format!("unsupported filter operator '{other}'")),
        };
        let raw = self.next()?;
        let value = match raw.strip_prefix('"') {
            Some(v) => v.to_string(),
            None if raw == "true" || raw == "false" => raw,
            None => return Err(format!("filter value must be quoted: {raw}")),
        };
        Ok(Filter::Compare { attr, op, value })
    }
}

/// Parses a filter; the error says what is wrong, for an `invalid_filter` answer.
pub fn parse(s: &str) -> Result<Filter, String> {
    let mut p = Parser { tokens: tokenize(s)?, pos: 0 };
    let f = p.or()?;
    match p.peek() {
        None => Ok(f),
        Some(t) => Err(format!("unexpected '{t}' in filter")),
    }
}

impl Filter {
    /// Evaluates against a resource; `get` answers an attribute's value (lower-case names).
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Filter::Present(a) => get(&a.to_ascii_lowercase()).is_some_and(|v| !v.is_empty()),
            Filter::Compare { attr, op, value } => {
                let Some(actual) = get(&attr.to_ascii_lowercase()) else { return false };
                let (actual, value) = (actual.to_lowercase(), value.to_lowercase());
                match op {
                    Op::Eq => actual == value,
                    Op::Co => actual.contains(&value),
                    Op::Sw => actual.starts_with(&value),
                }
            }
            Filter::And(a, b) => a.matches(get) && b.matches(get),
            Filter::Or(a, b) => a.matches(get) || b.matches(get),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(attr: &str) -> Option<String> {
        match attr {
            "username" => Some("Bob".into()),
            "origin" => Some("uaa".into()),
            _ => None,
        }
    }

    #[test]
    fn parses_and_evaluates_uaa_style_filters() {
        assert!(parse(r#"userName eq "bob" and origin eq "uaa""#).unwrap().matches(&user));
        assert!(!parse(r#"userName eq "alice" or origin eq "ldap""#).unwrap().matches(&user));
        assert!(parse(r#"(userName sw "b" or userName eq "x") and origin pr"#).unwrap().matches(&user));
        assert!(parse(r#"userName co "o""#).unwrap().matches(&user));
        assert!(!parse("email pr").unwrap().matches(&user));
    }

    #[test]
    fn rejects_malformed_filters() {
        assert!(parse(r#"userName eq bob"#).is_err());
        assert!(parse(r#"userName gt "b""#).is_err());
        assert!(parse(r#"userName eq "b"#).is_err());
        assert!(parse(r#"(userName eq "b""#).is_err());
    }
}

//! List query parameters as CF parses them: `page`, `per_page`, `order_by`, filters
//! (comma-separated lists), `label_selector`, `include`, timestamp filters. Unknown
//! parameters are a 400, as in CF.

use std::collections::BTreeMap;

use hearth_store::{Cond, LabelOp, LabelRequirement, ListSpec, Value};

use crate::error::{ApiError, ApiResult};

/// What a list endpoint accepts.
pub struct ListRules {
    pub filters: &'static [&'static str],
    /// Accepted `order_by` values and the column each sorts by.
    pub order_by: &'static [(&'static str, &'static str)],
    pub default_order: &'static str,
    pub includes: &'static [&'static str],
    pub labels: bool,
}

/// Parsed list parameters.
#[derive(Debug, Default)]
pub struct ListParams {
    pub page: u32,
    pub per_page: u32,
    pub order_col: &'static str,
    pub descending: bool,
    pub filters: BTreeMap<String, Vec<String>>,
    pub labels: Vec<LabelRequirement>,
    pub include: Vec<String>,
    pub time_conds: Vec<Cond>,
    /// The original pairs, minus paging, for pagination links.
    pub kept: Vec<(String, String)>,
}

fn parse_pairs(query: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| ApiError::BadQueryParameter("the query string is malformed".into()))
}

impl ListParams {
    pub fn parse(query: Option<&str>, rules: &ListRules) -> ApiResult<ListParams> {
        let pairs = parse_pairs(query)?;
        let mut p = ListParams { page: 1, per_page: 50, order_col: rules.default_order, ..ListParams::default() };
        let mut unknown = Vec::new();
        for (key, value) in &pairs {
            let key_base = key.split('[').next().unwrap_or(key);
            match key.as_str() {
                "page" => {
                    p.page = value
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| ApiError::BadQueryParameter("Page must be greater than 0".into()))?;
                    continue;
                }
                "per_page" => {
                    p.per_page = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=5000).contains(n))
                        .ok_or_else(|| ApiError::BadQueryParameter("Per page must be between 1 and 5000".into()))?;
                    continue;
                }
                "order_by" => {
                    let (desc, name) = match value.strip_prefix('-') {
                        Some(n) => (true, n),
                        None => (false, value.strip_prefix('+').unwrap_or(value)),
                    };
                    let Some((_, col)) = rules.order_by.iter().find(|(n, _)| *n == name) else {
                        let allowed: Vec<String> = rules.order_by.iter().map(|(n, _)| format!("'{n}'")).collect();
                        return Err(ApiError::BadQueryParameter(format!(
                            "Order by can only be: {}",
                            allowed.join(", ")
                        )));
                    };
                    p.order_col = col;
                    p.descending = desc;
                }
                "label_selector" if rules.labels => p.labels.extend(parse_label_selector(value)?),
                "include" if !rules.includes.is_empty() => {
                    for inc in value.split(',').filter(|s| !s.is_empty()) {
                        if !rules.includes.contains(&inc) {
                            let allowed: Vec<String> = rules.includes.iter().map(|n| format!("'{n}'")).collect();
                            return Err(ApiError::BadQueryParameter(format!(
                                "Invalid included resource: '{inc}'. Valid included resources are: {}",
                                allowed.join(", ")
                            )));
                        }
                        p.include.push(inc.to_string());
                    }
                }
                _ if key_base == "created_ats" || key_base == "updated_ats" => {
                    let col = if key_base == "created_ats" { "created_at" } else { "updated_at" };
                    p.time_conds.push(time_cond(col, key, value)?);
                }
                _ if rules.filters.contains(&key.as_str()) => {
                    let values: Vec<String> = value.split(',').map(str::to_string).collect();
                    p.filters.insert(key.clone(), values);
                }
                _ => unknown.push(format!("'{key}'")),
            }
            p.kept.push((key.clone(), value.clone()));
        }
        if !unknown.is_empty() {
            let mut valid: Vec<&str> = vec!["page", "per_page", "order_by"];
            valid.extend(rules.filters);
            if rules.labels {
                valid.push("label_selector");
            }
            if !rules.includes.is_empty() {
                valid.push("include");
            }
            valid.extend(["created_ats", "updated_ats"]);
            let valid: Vec<String> = valid.iter().map(|v| format!("'{v}'")).collect();
            return Err(ApiError::BadQueryParameter(format!(
                "Unknown query parameter(s): {}. Valid parameters are: {}",
                unknown.join(", "),
                valid.join(", ")
            )));
        }
        Ok(p)
    }

    pub fn filter(&self, name: &str) -> Option<&Vec<String>> {
        self.filters.get(name)
    }

    /// Adds `column IN (values)` for each `(filter, column)` the request used.
    pub fn in_filters(&self, conds: &mut Vec<Cond>, map: &[(&str, &'static str)]) {
        for (filter, col) in map {
            if let Some(v) = self.filter(filter) {
                conds.push(Cond::In(col, v.clone()));
            }
        }
    }

    /// The store conditions for the generic parts (labels, times) plus `extra`.
    pub fn spec(&self, mut conds: Vec<Cond>) -> ListSpec {
        conds.extend(self.time_conds.iter().cloned());
        conds.extend(self.labels.iter().cloned().map(Cond::Label));
        ListSpec {
            conds,
            order_by: self.order_col,
            descending: self.descending,
            page: self.page,
            per_page: self.per_page,
        }
    }

    pub fn includes(&self, what: &str) -> bool {
        self.include.iter().any(|i| i == what)
    }
}

fn time_cond(col: &'static str, key: &str, value: &str) -> ApiResult<Cond> {
    let op = match key.split_once('[').map(|(_, rest)| rest.trim_end_matches(']')) {
        None => "=",
        Some("gt") => ">",
        Some("gte") => ">=",
        Some("lt") => "<",
        Some("lte") => "<=",
        Some(other) => {
            return Err(ApiError::BadQueryParameter(format!("Invalid relational operator: '{other}'")));
        }
    };
    let ts = hearth_store::parse_time(value)
        .ok_or_else(|| ApiError::BadQueryParameter(format!("{key} has an invalid timestamp format")))?;
    Ok(match op {
        "=" => Cond::Eq(col, Value::Text(ts)),
        op => Cond::Cmp(col, op, Value::Text(ts)),
    })
}

/// Parses a Kubernetes-style label selector (`a=b,c!=d,e in (f,g),!h,i`).
pub fn parse_label_selector(s: &str) -> ApiResult<Vec<LabelRequirement>> {
    let bad = || ApiError::BadQueryParameter(format!("Invalid label_selector value: '{s}'"));
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(bad());
        }
    }
    if depth != 0 {
        return Err(bad());
    }
    parts.push(&s[start..]);
    let valid_key =
        |k: &str| !k.is_empty() && k.len() <= 316 && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    let list = |rest: &str| -> ApiResult<Vec<String>> {
        let inner = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(bad)?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    let mut out = Vec::new();
    for part in parts.into_iter().map(str::trim) {
        if part.is_empty() {
            return Err(bad());
        }
        let req = if let Some(key) = part.strip_prefix('!') {
            LabelRequirement { key: key.trim().into(), op: LabelOp::NotExists }
        } else if let Some((k, v)) = part.split_once("!=") {
            LabelRequirement { key: k.trim().into(), op: LabelOp::NotIn(vec![v.trim().into()]) }
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            LabelRequirement { key: k.trim().into(), op: LabelOp::In(vec![v.trim().into()]) }
        } else if let Some((k, rest)) = part.split_once(" notin ") {
            LabelRequirement { key: k.trim().into(), op: LabelOp::NotIn(list(rest)?) }
        } else if let Some((k, rest)) = part.split_once(" in ") {
            LabelRequirement { key: k.trim().into(), op: LabelOp::In(list(rest)?) }
        } else {
            LabelRequirement { key: part.into(), op: LabelOp::Exists }
        };
        let valid_value =
            |v: &String| v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        let values_ok = match &req.op {
            LabelOp::In(vs) | LabelOp::NotIn(vs) => vs.iter().all(valid_value),
            LabelOp::Exists | LabelOp::NotExists => true,
        };
        if !valid_key(&req.key) || !values_ok {
            return Err(bad());
        }
        out.push(req);
    }
    Ok(out)
}

/// Rejects any query parameter on endpoints that take none but `include`-like ones.
pub fn only_params(query: Option<&str>, allowed: &[&str]) -> ApiResult<Vec<(String, String)>> {
    let pairs = parse_pairs(query)?;
    let unknown: Vec<String> =
        pairs.iter().filter(|(k, _)| !allowed.contains(&k.as_str())).map(|(k, _)| format!("'{k}'")).collect();
    if unknown.is_empty() {
        Ok(pairs)
    } else {
        Err(ApiError::BadQueryParameter(format!("Unknown query parameter(s): {}", unknown.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: ListRules = ListRules {
        filters: &["names", "guids"],
        order_by: &[("created_at", "created_at"), ("name", "name")],
        default_order: "created_at",
        includes: &["space"],
        labels: true,
    };

    #[test]
    fn parses_paging_ordering_filters_and_labels() {
        let p = ListParams::parse(
            Some("page=2&per_page=5&order_by=-name&names=a,b&label_selector=env%3Dprod,tier+in+(web,api),!old&include=space"),
            &RULES,
        )
        .unwrap();
        assert_eq!((p.page, p.per_page, p.order_col, p.descending), (2, 5, "name", true));
        assert_eq!(p.filter("names").unwrap(), &vec!["a".to_string(), "b".to_string()]);
        assert_eq!(p.labels.len(), 3);
        assert_eq!(p.labels[1].op, LabelOp::In(vec!["web".into(), "api".into()]));
        assert_eq!(p.labels[2].op, LabelOp::NotExists);
        assert!(p.includes("space"));
        assert!(p.kept.iter().all(|(k, _)| k != "page" && k != "per_page"));
    }

    #[test]
    fn rejects_what_cf_rejects() {
        for q in [
            "page=0",
            "per_page=5001",
            "per_page=x",
            "order_by=size",
            "foo=bar",
            "include=org",
            "label_selector=a%3D(b",
            "created_ats[after]=2020-01-01T00:00:00Z",
        ] {
            let err = ListParams::parse(Some(q), &RULES).unwrap_err();
            assert!(matches!(err, ApiError::BadQueryParameter(_)), "{q} gave {err:?}");
        }
    }
}

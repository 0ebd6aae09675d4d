//! List queries: conditions, ordering and paging, turned into SQL with `$N` placeholders.
//! Column names come from the caller as `&'static str` (whitelisted at compile time);
//! every value is bound, never spliced.

use crate::queries::Value;

/// One condition of a `WHERE` clause.
#[derive(Clone, Debug)]
pub enum Cond {
    /// `col IN (…)`; an empty list matches nothing.
    In(&'static str, Vec<String>),
    /// `col = value`.
    Eq(&'static str, Value),
    /// `col IS NULL`.
    Null(&'static str),
    /// `col IS NOT NULL`.
    NotNull(&'static str),
    /// `col OP value` with OP one of `<`, `<=`, `>`, `>=`, `<>`.
    Cmp(&'static str, &'static str, Value),
    /// A sub-select: `sql` holds one `{}` that becomes the placeholder list for `values`;
    /// an empty list matches nothing.
    Sub(&'static str, Vec<String>),
    /// A label requirement on the resource's metadata.
    Label(LabelRequirement),
    /// Any of the conditions.
    Or(Vec<Cond>),
    /// All of the conditions.
    All(Vec<Cond>),
    /// Never true.
    False,
}

/// How a label requirement matches (the Kubernetes label-selector grammar CF uses).
#[derive(Clone, Debug, PartialEq)]
pub enum LabelOp {
    Exists,
    NotExists,
    In(Vec<String>),
    NotIn(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct LabelRequirement {
    pub key: String,
    pub op: LabelOp,
}

/// A page request plus the conditions and ordering of a list.
#[derive(Clone, Debug)]
pub struct ListSpec {
    pub conds: Vec<Cond>,
    pub order_by: &'static str,
    pub descending: bool,
    pub page: u32,
    pub per_page: u32,
}

impl Default for ListSpec {
    fn default() -> Self {
        ListSpec { conds: Vec::new(), order_by: "created_at", descending: false, page: 1, per_page: 50 }
    }
}

impl ListSpec {
    /// Every row (for internal use: a page large enough to hold any list Hearth keeps).
    pub fn all(conds: Vec<Cond>) -> ListSpec {
        ListSpec { conds, per_page: u32::MAX / 2, ..ListSpec::default() }
    }
}

/// One page of results and the total number of matching rows.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// Builds a `WHERE` clause, appending bound values to `binds`.
pub(crate) fn where_clause(table: &str, key: &str, conds: &[Cond], binds: &mut Vec<Value>) -> String {
    if conds.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = conds.iter().map(|c| cond_sql(table, key, c, binds)).collect();
    format!(" WHERE {}", parts.join(" AND "))
}

fn placeholders(values: &[String], binds: &mut Vec<Value>) -> String {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        binds.push(Value::Text(v.clone()));
        out.push(format!("${}", binds.len()));
    }
    out.join(", ")
}

fn cond_sql(table: &str, key: &str, cond: &Cond, binds: &mut Vec<Value>) -> String {
    match cond {
        Cond::In(_, values) | Cond::Sub(_, values) if values.is_empty() => "1 = 0".into(),
        Cond::In(col, values) => format!("{table}.{col} IN ({})", placeholders(values, binds)),
        Cond::Sub(sql, values) => sql.replacen("{}", &placeholders(values, binds), 1),
        Cond::Eq(col, v) => {
            binds.push(v.clone());
            format!("{table}.{col} = ${}", binds.len())
        }
        Cond::Null(col) => format!("{table}.{col} IS NULL"),
        Cond::NotNull(col) => format!("{table}.{col} IS NOT NULL"),
        Cond::Cmp(col, op, v) => {
            binds.push(v.clone());
            format!("{table}.{col} {op} ${}", binds.len())
        }
        Cond::Label(req) => {
            binds.push(Value::Text(req.key.clone()));
            let key_ph = format!("${}", binds.len());
            let exists = |extra: String| {
                format!(
                    "EXISTS (SELECT 1 FROM metadata m WHERE m.resource_guid = {table}.{key} \
                     AND m.kind = 'label' AND m.key = {key_ph}{extra})"
                )
            };
            match &req.op {
                LabelOp::Exists => exists(String::new()),
                LabelOp::NotExists => format!("NOT {}", exists(String::new())),
                LabelOp::In(values) if values.is_empty() => "1 = 0".into(),
                LabelOp::In(values) => exists(format!(" AND m.value IN ({})", placeholders(values, binds))),
                LabelOp::NotIn(values) if values.is_empty() => "1 = 1".into(),
                LabelOp::NotIn(values) => {
                    format!("NOT {}", exists(format!(" AND m.value IN ({})", placeholders(values, binds))))
                }
            }
        }
        Cond::Or(conds) if conds.is_empty() => "1 = 0".into(),
        Cond::Or(conds) => {
            let parts: Vec<String> = conds.iter().map(|c| cond_sql(table, key, c, binds)).collect();
            format!("({})", parts.join(" OR "))
        }
        Cond::All(conds) if conds.is_empty() => "1 = 1".into(),
        Cond::All(conds) => {
            let parts: Vec<String> = conds.iter().map(|c| cond_sql(table, key, c, binds)).collect();
            format!("({})", parts.join(" AND "))
        }
        Cond::False => "1 = 0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_numbered_placeholders_in_order() {
        let mut binds = Vec::new();
        let sql = where_clause(
            "apps",
            "guid",
            &[
                Cond::In("name", vec!["a".into(), "b".into()]),
                Cond::Eq("state", Value::Text("STARTED".into())),
                Cond::Label(LabelRequirement { key: "env".into(), op: LabelOp::In(vec!["prod".into()]) }),
            ],
            &mut binds,
        );
        assert_eq!(
            sql,
            " WHERE apps.name IN ($1, $2) AND apps.state = $3 AND EXISTS (SELECT 1 FROM metadata m \
             WHERE m.resource_guid = apps.guid AND m.kind = 'label' AND m.key = $4 AND m.value IN ($5))"
        );
        assert_eq!(binds.len(), 5);
    }

    #[test]
    fn empty_lists_match_nothing() {
        let mut binds = Vec::new();
        let sql = where_clause("spaces", "guid", &[Cond::In("guid", vec![]), Cond::Or(vec![])], &mut binds);
        assert_eq!(sql, " WHERE 1 = 0 AND 1 = 0");
        assert!(binds.is_empty());
    }
}

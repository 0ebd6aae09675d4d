//! Generic queries over [`Record`] types, and the few that need their own SQL.

use std::collections::BTreeMap;

use crate::list::{ListSpec, Page, where_clause};
use crate::{Conn, Error, Result, Row};

/// A bound SQL value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

/// A row type stored in one table, keyed by one text column.
pub trait Record: Sized + Send + Unpin {
    const TABLE: &'static str;
    const KEY: &'static str;
    const COLUMNS: &'static [&'static str];
    /// Reads a row selected as `COLUMNS`, in that order.
    fn from_row(row: &Row<'_>) -> Result<Self>;
    fn values(&self) -> Vec<Value>;
    fn key(&self) -> &str;
}

/// A Rust type stored in one column.
pub trait Column: Sized {
    fn get(row: &Row<'_>, i: usize) -> Result<Self>;
    fn value(&self) -> Value;
}

impl Column for String {
    fn get(row: &Row<'_>, i: usize) -> Result<Self> {
        row.get(i)
    }
    fn value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl Column for Option<String> {
    fn get(row: &Row<'_>, i: usize) -> Result<Self> {
        row.get(i)
    }
    fn value(&self) -> Value {
        Value::OptText(self.clone())
    }
}

impl Column for i64 {
    fn get(row: &Row<'_>, i: usize) -> Result<Self> {
        row.get(i)
    }
    fn value(&self) -> Value {
        Value::Int(*self)
    }
}

impl Column for Option<i64> {
    fn get(row: &Row<'_>, i: usize) -> Result<Self> {
        row.get(i)
    }
    fn value(&self) -> Value {
        Value::OptInt(*self)
    }
}

impl Column for bool {
    fn get(row: &Row<'_>, i: usize) -> Result<Self> {
        Ok(row.get::<i64>(i)? != 0)
    }
    fn value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl Column for serde_json::Value {
    fn get(row: &Row<'_>, i: usize) -> Result<Self> {
        row.json(i)
    }
    fn value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

/// Runs a statement that returns no rows; answers the number of rows it changed.
pub async fn execute(conn: &mut Conn, sql: &str, values: Vec<Value>) -> Result<u64> {
    conn.execute(sql, &values).await
}

/// Inserts a record.
pub async fn insert<T: Record>(conn: &mut Conn, record: &T) -> Result<()> {
    let cols = T::COLUMNS.join(", ");
    let phs: Vec<String> = (1..=T::COLUMNS.len()).map(|i| format!("${i}")).collect();
    let sql = format!("INSERT INTO {} ({cols}) VALUES ({})", T::TABLE, phs.join(", "));
    execute(conn, &sql, record.values()).await?;
    Ok(())
}

/// Writes every column of a record back, by key. Fails with `NotFound` if it is gone.
pub async fn update<T: Record>(conn: &mut Conn, record: &T) -> Result<()> {
    let sets: Vec<String> = T::COLUMNS.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 1)).collect();
    let mut values = record.values();
    values.push(Value::Text(record.key().to_string()));
    let sql = format!("UPDATE {} SET {} WHERE {} = ${}", T::TABLE, sets.join(", "), T::KEY, values.len());
    match execute(conn, &sql, values).await? {
        0 => Err(Error::NotFound),
        _ => Ok(()),
    }
}

/// Compare-and-swap: writes every column of a record back only if its `version` column
/// still holds `expected`; answers whether it did (false: changed by someone else, or gone).
pub async fn update_versioned<T: Record>(conn: &mut Conn, record: &T, expected: i64) -> Result<bool> {
    let sets: Vec<String> = T::COLUMNS.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 1)).collect();
    let mut values = record.values();
    values.push(Value::Text(record.key().to_string()));
    values.push(Value::Int(expected));
    let (k, v) = (values.len() - 1, values.len());
    let sql = format!("UPDATE {} SET {} WHERE {} = ${k} AND version = ${v}", T::TABLE, sets.join(", "), T::KEY);
    Ok(execute(conn, &sql, values).await? == 1)
}

/// Compare-and-swap delete: removes the record only if its `version` column holds `expected`.
pub async fn delete_versioned<T: Record>(conn: &mut Conn, key: &str, expected: i64) -> Result<bool> {
    let sql = format!("DELETE FROM {} WHERE {} = $1 AND version = $2", T::TABLE, T::KEY);
    Ok(execute(conn, &sql, vec![Value::Text(key.to_string()), Value::Int(expected)]).await? == 1)
}

/// Deletes a record by key; answers whether it existed. Its metadata goes with it.
pub async fn delete<T: Record>(conn: &mut Conn, key: &str) -> Result<bool> {
    let sql = format!("DELETE FROM {} WHERE {} = $1", T::TABLE, T::KEY);
    let n = execute(conn, &sql, vec![Value::Text(key.to_string())]).await?;
    execute(conn, "DELETE FROM metadata WHERE resource_guid = $1", vec![Value::Text(key.to_string())]).await?;
    Ok(n > 0)
}

/// The record with this key, if any.
pub async fn get<T: Record>(conn: &mut Conn, key: &str) -> Result<Option<T>> {
    find_one(conn, &[crate::Cond::Eq(T::KEY, Value::Text(key.to_string()))]).await
}

/// The first record matching every condition, if any.
pub async fn find_one<T: Record>(conn: &mut Conn, conds: &[crate::Cond]) -> Result<Option<T>> {
    let mut binds = Vec::new();
    let sql = format!(
        "SELECT {} FROM {}{} LIMIT 1",
        T::COLUMNS.join(", "),
        T::TABLE,
        where_clause(T::TABLE, T::KEY, conds, &mut binds)
    );
    Ok(conn.fetch(&sql, &binds, T::from_row).await?.into_iter().next())
}

/// Every record matching the conditions, in key order.
pub async fn find_all<T: Record>(conn: &mut Conn, conds: Vec<crate::Cond>) -> Result<Vec<T>> {
    let spec = ListSpec { order_by: T::KEY, ..ListSpec::all(conds) };
    Ok(list::<T>(conn, &spec).await?.items)
}

/// The number of records matching the conditions.
pub async fn count<T: Record>(conn: &mut Conn, conds: &[crate::Cond]) -> Result<u64> {
    let mut binds = Vec::new();
    let sql = format!("SELECT COUNT(*) AS n FROM {}{}", T::TABLE, where_clause(T::TABLE, T::KEY, conds, &mut binds));
    count_of(conn, &sql, &binds).await
}

async fn count_of(conn: &mut Conn, sql: &str, binds: &[Value]) -> Result<u64> {
    let n = conn.fetch(sql, binds, |r| r.get::<i64>(0)).await?.into_iter().next().ok_or(Error::NotFound)?;
    Ok(n.max(0) as u64)
}

/// One page of records matching the spec, and the total count.
pub async fn list<T: Record>(conn: &mut Conn, spec: &ListSpec) -> Result<Page<T>> {
    let mut binds = Vec::new();
    let filter = where_clause(T::TABLE, T::KEY, &spec.conds, &mut binds);
    let dir = if spec.descending { "DESC" } else { "ASC" };
    let per_page = spec.per_page.max(1) as i64;
    let offset = (spec.page.max(1) as i64 - 1).saturating_mul(per_page);
    let sql = format!(
        "SELECT {cols} FROM {table}{filter} ORDER BY {table}.{order} {dir}, {table}.{key} {dir} LIMIT {per_page} OFFSET {offset}",
        cols = T::COLUMNS.join(", "),
        table = T::TABLE,
        order = spec.order_by,
        key = T::KEY,
    );
    let items = conn.fetch(&sql, &binds, T::from_row).await?;
    let total = if spec.page <= 1 && (items.len() as i64) < per_page {
        items.len() as u64
    } else {
        count_of(conn, &format!("SELECT COUNT(*) AS n FROM {}{filter}", T::TABLE), &binds).await?
    };
    Ok(Page { items, total })
}

/// Single-column text values from a query (for guid lists).
pub async fn strings(conn: &mut Conn, sql: &str, values: Vec<Value>) -> Result<Vec<String>> {
    conn.fetch(sql, &values, |r| r.get(0)).await
}

/// The data generation (migration 0009): it moves on, in the writer's transaction, with
/// every change to apps, spaces, organizations and metadata. Read it before the data an
/// answer is built from, and the answer is no newer than that data: a later change
/// shows as a larger number.
pub async fn data_generation(conn: &mut Conn) -> Result<i64> {
    let rows = conn.fetch("SELECT n FROM data_generation WHERE id = 1", &[], |r| r.get::<i64>(0)).await?;
    rows.into_iter().next().ok_or_else(|| Error::Corrupt("the data generation row is missing".into()))
}

/// Labels and annotations of one resource.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The metadata of each resource in `guids` (resources without any are absent).
pub async fn metadata_for(conn: &mut Conn, guids: &[String]) -> Result<BTreeMap<String, Metadata>> {
    let mut out: BTreeMap<String, Metadata> = BTreeMap::new();
    if guids.is_empty() {
        return Ok(out);
    }
    let phs: Vec<String> = (1..=guids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT resource_guid, kind, key, value FROM metadata WHERE resource_guid IN ({}) ORDER BY key",
        phs.join(", ")
    );
    let values: Vec<Value> = guids.iter().map(|g| Value::Text(g.clone())).collect();
    let rows: Vec<(String, String, String, String)> =
        conn.fetch(&sql, &values, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).await?;
    for (guid, kind, key, value) in rows {
        let entry = out.entry(guid).or_default();
        let map = if kind == "label" { &mut entry.labels } else { &mut entry.annotations };
        map.insert(key, value);
    }
    Ok(out)
}

/// Applies a metadata patch: `Some(v)` sets a key, `None` removes it.
pub async fn patch_metadata(
    conn: &mut Conn,
    guid: &str,
    labels: &BTreeMap<String, Option<String>>,
    annotations: &BTreeMap<String, Option<String>>,
) -> Result<()> {
    for (kind, map) in [("label", labels), ("annotation", annotations)] {
        for (key, value) in map {
            let base = vec![Value::Text(guid.into()), Value::Text(kind.into()), Value::Text(key.clone())];
            execute(conn, "DELETE FROM metadata WHERE resource_guid = $1 AND kind = $2 AND key = $3", base.clone())
                .await?;
            if let Some(v) = value {
                let mut vals = base;
                vals.push(Value::Text(v.clone()));
                execute(conn, "INSERT INTO metadata (resource_guid, kind, key, value) VALUES ($1, $2, $3, $4)", vals)
                    .await?;
            }
        }
    }
    Ok(())
}

//! Connections and the two ways a statement runs: on SQLite through rusqlite, in the
//! calling thread (a statement on a local file costs microseconds; sqlx's SQLite driver
//! sends every statement and every row through a worker thread), and on PostgreSQL
//! through sqlx's `Any` driver.
//!
//! A [`Conn`] is one connection, from the pool (reads) or inside a [`crate::Tx`]. Rows
//! are read in place by column index ([`Row`]); nothing above this module sees a driver.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AssertSqlSafe, Row as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::queries::Value;
use crate::{Error, Result};

/// How many SQLite connections may be out at once (readers and the one writer).
const LITE_CONNECTIONS: usize = 16;
/// Prepared statements kept per SQLite connection (the queries are built from a few
/// hundred shapes).
const LITE_STATEMENT_CACHE: usize = 256;

/// The SQLite connections of one database file.
pub(crate) struct LitePool {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    permits: Arc<Semaphore>,
}

impl LitePool {
    pub(crate) fn new(path: PathBuf) -> Arc<LitePool> {
        Arc::new(LitePool { path, idle: Mutex::new(Vec::new()), permits: Arc::new(Semaphore::new(LITE_CONNECTIONS)) })
    }

    fn open(&self) -> Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(&self.path, flags)?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;")?;
        conn.set_prepared_statement_cache_capacity(LITE_STATEMENT_CACHE);
        Ok(conn)
    }

    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Conn> {
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|_| Error::Config("the store is closed".into()))?;
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        Ok(Conn { kind: Kind::Lite(LiteConn { conn: Some(conn), pool: self.clone(), in_tx: false, _permit: permit }) })
    }

    pub(crate) fn close(&self) {
        self.permits.close();
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A pooled SQLite connection; goes back to its pool when dropped (rolled back first if a
/// transaction is still open).
struct LiteConn {
    conn: Option<rusqlite::Connection>,
    pool: Arc<LitePool>,
    in_tx: bool,
    _permit: OwnedSemaphorePermit,
}

impl LiteConn {
    fn get(&self) -> &rusqlite::Connection {
        self.conn.as_ref().expect("a pooled connection is present until dropped")
    }
}

impl Drop for LiteConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.in_tx && conn.execute_batch("ROLLBACK").is_err() {
            return; // a connection in an unknown state is closed, not reused
        }
        if !self.pool.permits.is_closed() {
            self.pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        }
    }
}

/// One database connection: a read connection from [`crate::Store::conn`] or the
/// connection of a [`crate::Tx`].
pub struct Conn {
    kind: Kind,
}

enum Kind {
    Lite(LiteConn),
    Pooled(PoolConnection<Any>),
    Tx(sqlx::Transaction<'static, Any>),
}

impl Conn {
    pub(crate) fn pooled(conn: PoolConnection<Any>) -> Conn {
        Conn { kind: Kind::Pooled(conn) }
    }

    pub(crate) fn transaction(tx: sqlx::Transaction<'static, Any>) -> Conn {
        Conn { kind: Kind::Tx(tx) }
    }

    /// Starts a transaction on a SQLite connection (`BEGIN IMMEDIATE`: the write lock is
    /// taken at once, never upgraded later).
    pub(crate) fn begin_lite(mut self) -> Result<Conn> {
        if let Kind::Lite(lite) = &mut self.kind {
            lite.get().execute_batch("BEGIN IMMEDIATE")?;
            lite.in_tx = true;
        }
        Ok(self)
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self.kind {
            Kind::Lite(mut lite) => {
                lite.get().execute_batch("COMMIT")?;
                lite.in_tx = false;
                Ok(())
            }
            Kind::Tx(tx) => Ok(tx.commit().await?),
            Kind::Pooled(_) => Ok(()),
        }
    }

    pub(crate) async fn rollback(self) -> Result<()> {
        match self.kind {
            Kind::Lite(mut lite) => {
                lite.in_tx = false;
                lite.get().execute_batch("ROLLBACK")?;
                Ok(())
            }
            Kind::Tx(tx) => Ok(tx.rollback().await?),
            Kind::Pooled(_) => Ok(()),
        }
    }

    fn any(&mut self) -> Option<&mut sqlx::AnyConnection> {
        match &mut self.kind {
            Kind::Lite(_) => None,
            Kind::Pooled(conn) => Some(&mut **conn),
            Kind::Tx(tx) => Some(&mut **tx),
        }
    }

    /// Runs a statement that returns no rows; answers the number of rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64> {
        if let Kind::Lite(lite) = &self.kind {
            let mut stmt = lite.get().prepare_cached(sql)?;
            bind_lite(&mut stmt, values)?;
            return Ok(stmt.raw_execute()? as u64);
        }
        let conn = self.any().expect("not SQLite");
        let q = bind_any(sqlx::query(AssertSqlSafe(sql.to_string())), values);
        Ok(q.execute(conn).await?.rows_affected())
    }

    /// Runs a query and turns each row into a `T` with `f`, in order.
    pub(crate) async fn fetch<T>(
        &mut self,
        sql: &str,
        values: &[Value],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        if let Kind::Lite(lite) = &self.kind {
            let mut stmt = lite.get().prepare_cached(sql)?;
            bind_lite(&mut stmt, values)?;
            let mut rows = stmt.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(f(&Row(Inner::Lite(row)))?);
            }
            return Ok(out);
        }
        let conn = self.any().expect("not SQLite");
        let q = bind_any(sqlx::query(AssertSqlSafe(sql.to_string())), values);
        let rows = q.fetch_all(conn).await?;
        rows.iter().map(|r| f(&Row(Inner::Any(r)))).collect()
    }
}

/// Binds `$N` placeholders: SQLite treats `$1` as a named parameter, so each parameter's
/// name says which value it takes.
fn bind_lite(stmt: &mut rusqlite::CachedStatement<'_>, values: &[Value]) -> Result<()> {
    for i in 1..=stmt.parameter_count() {
        let name = stmt.parameter_name(i).unwrap_or("");
        let n: usize = name
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .filter(|n| (1..=values.len()).contains(n))
            .ok_or_else(|| Error::Config(format!("statement parameter '{name}' has no value")))?;
        match &values[n - 1] {
            Value::Text(s) => stmt.raw_bind_parameter(i, s.as_str())?,
            Value::OptText(s) => stmt.raw_bind_parameter(i, s.as_deref())?,
            Value::Int(v) => stmt.raw_bind_parameter(i, v)?,
            Value::OptInt(v) => stmt.raw_bind_parameter(i, v)?,
        }
    }
    Ok(())
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

fn bind_any<'q>(mut q: AnyQuery<'q>, values: &[Value]) -> AnyQuery<'q> {
    for v in values {
        q = match v {
            Value::Text(s) => q.bind(s.clone()),
            Value::OptText(s) => q.bind(s.clone()),
            Value::Int(i) => q.bind(*i),
            Value::OptInt(i) => q.bind(*i),
        };
    }
    q
}

/// One result row, read by column index.
pub struct Row<'a>(Inner<'a>);

enum Inner<'a> {
    Any(&'a AnyRow),
    Lite(&'a rusqlite::Row<'a>),
}

impl Row<'_> {
    /// Column `i` as `T` (text, integers, and their `Option`s: NULL is `None`).
    pub fn get<T>(&self, i: usize) -> Result<T>
    where
        T: rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
    {
        match &self.0 {
            Inner::Any(r) => Ok(r.try_get(i)?),
            Inner::Lite(r) => Ok(r.get(i)?),
        }
    }

    /// A JSON document stored as text, parsed where it lies.
    pub fn json(&self, i: usize) -> Result<serde_json::Value> {
        match &self.0 {
            Inner::Any(r) => Ok(serde_json::from_str(&r.try_get::<String, _>(i)?)?),
            Inner::Lite(r) => {
                let text = r.get_ref(i)?.as_str().map_err(|e| Error::Corrupt(format!("column {i}: {e}")))?;
                Ok(serde_json::from_str(text)?)
            }
        }
    }
}

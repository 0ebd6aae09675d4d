//! Hearth's store: the schema, its migrations and every query, over SQLite (the
//! embedded default, in WAL mode) or PostgreSQL (to scale out).
//!
//! Invariants:
//! - One portable SQL dialect: queries use `$N` placeholders, `BIGINT`, `TEXT`, RFC 3339
//!   times and JSON as text, so the same statement runs on both back ends through
//!   sqlx's `Any` driver.
//! - Writes go through a [`Tx`]: a request's changes commit together or not at all. On
//!   SQLite, write transactions are serialised in-process (one writer at a time is all
//!   SQLite allows; waiting here is cheaper than `SQLITE_BUSY` retries).
//! - The store knows nothing of HTTP, JSON wire shapes or authorization.

mod error;
pub mod list;
pub mod models;
mod queries;
mod time_fmt;

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, SqlSafeStr};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use error::{Error, Result};
pub use list::{Cond, LabelOp, LabelRequirement, ListSpec, Page};
pub use models::*;
pub use queries::*;
pub use sqlx::AnyConnection as Conn;
pub use time_fmt::{format_cf_time, format_time, now, parse_time, time_of, unix_seconds};

/// Which database the store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    write_lock: Option<Arc<Mutex<()>>>,
}

/// A write transaction. Dropping it without [`Tx::commit`] rolls back.
pub struct Tx {
    tx: sqlx::Transaction<'static, Any>,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl std::ops::Deref for Tx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.tx
    }
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Rolls back now, before the write lock is released. (Dropping a `Tx` also rolls back,
    /// but sqlx sends that `ROLLBACK` later, when the connection is next used: until then a
    /// SQLite write lock can outlive the in-process one and the next writer sees `database
    /// is locked`.)
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "list indexes", include_str!("../migrations/0002_list_indexes.sql")),
    (3, "scheduler", include_str!("../migrations/0003_scheduler.sql")),
    (4, "droplets", include_str!("../migrations/0004_droplets.sql")),
    (5, "tasks", include_str!("../migrations/0005_tasks.sql")),
    (6, "sidecars", include_str!("../migrations/0006_sidecars.sql")),
    (7, "services", include_str!("../migrations/0007_services.sql")),
    (8, "preferred address", include_str!("../migrations/0008_preferred_address.sql")),
];

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    /// `sqlite:///path/file.db` and `postgres://…` URLs are accepted.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::Config(format!("unsupported database URL '{url}': use sqlite:///PATH or postgres://…")));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let options: AnyConnectOptions = url.parse().map_err(|e| Error::Config(format!("bad database URL: {e}")))?;
        let max = match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        let store = Store { pool, write_lock: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))) };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let migrations: Vec<Migration> = MIGRATIONS
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    sqlx::AssertSqlSafe(*sql).into_sql_str(),
                    false,
                )
            })
            .collect();
        let migrator = Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT };
        migrator.run(&self.pool).await.map_err(|e| Error::Migrate(e.to_string()))
    }

    /// A connection for reads outside a transaction.
    pub async fn conn(&self) -> Result<sqlx::pool::PoolConnection<Any>> {
        Ok(self.pool.acquire().await?)
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let tx = self.pool.begin().await?;
        Ok(Tx { tx, _guard: guard })
    }

    /// Closes every connection; pending transactions are rolled back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A new random resource identifier in the lowercase UUID form CF uses.
pub fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Creates a new, empty PostgreSQL database next to the one `admin_url` names and
/// answers its URL (for tests that each need a database of their own).
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<String> {
    use sqlx::Connection;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::Config(format!("invalid database name '{name}'")));
    }
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
    conn.close().await?;
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let prefix = base.rsplit_once('/').map(|(p, _)| p).unwrap_or(base);
    Ok(format!("{prefix}/{name}{query}"))
}

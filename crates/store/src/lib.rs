//! Hearth's store: the schema, its migrations and every query, over SQLite (the
//! embedded default, in WAL mode) or PostgreSQL (to scale out).
//!
//! Invariants:
//! - One portable SQL dialect: queries use `$N` placeholders, `BIGINT`, `TEXT`, RFC 3339
//!   times and JSON as text, so the same statement runs on both back ends: SQLite through
//!   rusqlite in the calling thread, PostgreSQL through sqlx (see `conn`). Migrations run
//!   through sqlx on both; only triggers, which the two write differently, come in one
//!   text per back end.
//! - [`data_generation`] moves on, in the writer's transaction, with every change to the
//!   tables cached API answers are built from (triggers, migration 0009).
//! - Writes go through a [`Tx`]: a request's changes commit together or not at all. On
//!   SQLite, write transactions are serialised in-process (one writer at a time is all
//!   SQLite allows; waiting here is cheaper than `SQLITE_BUSY` retries).
//! - The store knows nothing of HTTP, JSON wire shapes or authorization.

mod conn;
mod error;
pub mod list;
pub mod models;
mod queries;
mod time_fmt;

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, SqlSafeStr};
use tokio::sync::{Mutex, OwnedMutexGuard};

use conn::LitePool;
pub use conn::{Conn, Row};
pub use error::{Error, Result};
pub use list::{Cond, LabelOp, LabelRequirement, ListSpec, Page};
pub use models::*;
pub use queries::*;
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
    db: Db,
    write_lock: Option<Arc<Mutex<()>>>,
}

#[derive(Clone)]
enum Db {
    Sqlite(Arc<LitePool>),
    Postgres(AnyPool),
}

/// A write transaction. Dropping it without [`Tx::commit`] rolls back.
pub struct Tx {
    conn: Conn,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl std::ops::Deref for Tx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        self.conn.commit().await
    }

    /// Rolls back now, before the write lock is released. (Dropping a `Tx` also rolls back:
    /// on SQLite at once; on PostgreSQL sqlx sends that `ROLLBACK` when the connection is
    /// next used.)
    pub async fn rollback(self) -> Result<()> {
        self.conn.rollback().await
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

/// Migrations written once per back end: (version, name, SQLite text, PostgreSQL text).
const DIALECT_MIGRATIONS: &[(i64, &str, &str, &str)] = &[(
    9,
    "data generation",
    include_str!("../migrations/0009_data_generation.sqlite.sql"),
    include_str!("../migrations/0009_data_generation.postgres.sql"),
)];

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
        // Migrations run through sqlx on both back ends (its bookkeeping table is what
        // earlier databases carry); SQLite is then served by rusqlite (see `conn`).
        let max = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        migrate(&pool, backend).await?;
        let db = match backend {
            Backend::Sqlite => {
                pool.close().await;
                Db::Sqlite(LitePool::new(sqlite_path(&url)?))
            }
            Backend::Postgres => Db::Postgres(pool),
        };
        Ok(Store { db, write_lock: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))) })
    }

    /// A connection for reads outside a transaction.
    pub async fn conn(&self) -> Result<Conn> {
        match &self.db {
            Db::Sqlite(pool) => pool.acquire().await,
            Db::Postgres(pool) => Ok(Conn::pooled(pool.acquire().await?)),
        }
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let conn = match &self.db {
            Db::Sqlite(pool) => pool.acquire().await?.begin_lite()?,
            Db::Postgres(pool) => Conn::transaction(pool.begin().await?),
        };
        Ok(Tx { conn, _guard: guard })
    }

    /// Closes every connection; pending transactions are rolled back.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(pool) => pool.close(),
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

async fn migrate(pool: &AnyPool, backend: Backend) -> Result<()> {
    let dialect = DIALECT_MIGRATIONS.iter().map(|(version, name, lite, pg)| match backend {
        Backend::Sqlite => (*version, *name, *lite),
        Backend::Postgres => (*version, *name, *pg),
    });
    let mut all: Vec<(i64, &str, &str)> = MIGRATIONS.iter().copied().chain(dialect).collect();
    all.sort_by_key(|(version, _, _)| *version);
    let migrations: Vec<Migration> = all
        .into_iter()
        .map(|(version, name, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(name),
                MigrationType::Simple,
                sqlx::AssertSqlSafe(sql).into_sql_str(),
                false,
            )
        })
        .collect();
    let migrator = Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT };
    migrator.run(pool).await.map_err(|e| Error::Migrate(e.to_string()))
}

/// The file a `sqlite:` URL names (`sqlite:///abs/path`, `sqlite://rel/path`, `sqlite:path`;
/// any `?options` are sqlx's and were used when the file was created).
fn sqlite_path(url: &str) -> Result<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path.starts_with(':') {
        return Err(Error::Config(format!("'{url}' names no database file: use sqlite:///PATH")));
    }
    Ok(std::path::PathBuf::from(path))
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

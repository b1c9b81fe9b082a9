//! Persistence adapter: Postgres and SQLite through sea-orm.
//!
//! [`SqlStore`] implements the domain's storage ports — the transactional [`UnitOfWork`] and
//! every repository — on one `sea_orm::DatabaseConnection`. Database errors never cross into the
//! domain: they become [`StoreError`] (or the port's own error) at this boundary.
//!
//! [`UnitOfWork`]: mdcreator_domain::feed::UnitOfWork
//! [`StoreError`]: mdcreator_domain::StoreError

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mdcreator_migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use serde::Deserialize;

mod accounts;
mod api_tokens;
mod appender;
mod collab;
mod comments;
mod commit;
mod documents;
pub mod entity;
mod error;
mod files;
mod idempotency;
mod journal;
mod plans;
mod rows;
mod sync;
mod turns;
mod workspaces;

/// How often the SQLite WAL is checkpointed.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Pages in the SQLite WAL (4 KiB each by default, so about 1 GiB) past which a checkpoint holds
/// writers back so that the log starts over (see `SqlStore::spawn_checkpointer`).
const WAL_RESTART_FRAMES: i64 = 262_144;

/// Connection settings; the database URL is passed separately (it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SqlSettings {
    /// Largest number of pooled connections (forced to 1 for an in-memory SQLite database).
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before the store reports itself
    /// unavailable.
    pub acquire_timeout_ms: u64,
    /// Postgres only: the server aborts any statement running longer than this.
    pub statement_timeout_ms: u64,
    /// SQLite files only: how long an update waits in the update journal, at most, before it
    /// is folded into `document_updates` (see [`journal`]).
    pub journal_fold_ms: u64,
    /// SQLite only: how long a writer waits for the database lock.
    pub busy_timeout_ms: u64,
}

impl Default for SqlSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout_ms: 2_000,
            statement_timeout_ms: 15_000,
            busy_timeout_ms: 5_000,
            journal_fold_ms: 1_000,
        }
    }
}

/// The SQL store: cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: DatabaseConnection,
    /// SQLite only: writers of this process take turns here instead of polling SQLite's lock.
    writers: Option<Arc<turns::WriteTurns>>,
    /// SQLite files only: the Yjs update log's journal (see [`journal`]), or, when another
    /// process holds it, the log's own connection (see [`appender`]).
    journal: Option<Arc<journal::Journal>>,
    appender: Option<Arc<appender::Appender>>,
}

impl SqlStore {
    /// Opens a pool on `url` (`postgres://…` or `sqlite:…`).
    ///
    /// SQLite databases are created when missing and run in WAL mode with foreign keys on and
    /// `synchronous=NORMAL`: a commit is durable once it returns, across a crash of the process
    /// (the WAL is in the OS's hands), though not across a power loss before the next
    /// checkpoint — the usual trade for an embedded, single-machine store. An
    /// in-memory SQLite database (`sqlite::memory:`) gets a single, never-recycled connection
    /// so that it lives as long as the store.
    pub async fn connect(url: &str, settings: &SqlSettings) -> anyhow::Result<SqlStore> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            .sqlx_logging(false);
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        if scheme == "sqlite" {
            let busy = Duration::from_millis(settings.busy_timeout_ms);
            options.map_sqlx_sqlite_opts(move |o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(busy)
                    // Checkpoints run in the background (`spawn_checkpointer`), not inside
                    // whichever commit crosses the WAL's size threshold.
                    .pragma("wal_autocheckpoint", "0")
            });
            // Prepared statements stay prepared (see `plans`).
            options.map_sqlx_sqlite_pool_opts(|pool| {
                pool.after_connect(|conn, _| {
                    Box::pin(async move {
                        let mut handle = conn.lock_handle().await?;
                        if !plans::stabilize(handle.as_raw_handle().cast()) {
                            tracing::warn!("SQLite refused stable query plans on a connection");
                        }
                        Ok(())
                    })
                })
            });
            // A file on this machine does not go stale: no ping round trip to the connection's
            // worker thread before every query.
            options.test_before_acquire(false);
            if is_sqlite_memory(url) {
                options
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
        } else if scheme == "postgres" || scheme == "postgresql" {
            options
                .statement_timeout(Duration::from_millis(settings.statement_timeout_ms))
                // A network round trip before every query only pays off for a connection that
                // sat idle long enough for the server or a proxy to drop it.
                .test_before_acquire_if_idle_for(Duration::from_secs(30));
        } else {
            anyhow::bail!("unsupported database URL: expected postgres:// or sqlite:");
        }
        let db = Database::connect(options)
            .await
            .context("cannot connect to the database")?;
        let mut store = SqlStore::from_connection(db);
        if scheme == "sqlite" && !is_sqlite_memory(url) {
            let options = SqliteConnectOptions::from_str(url).context("invalid SQLite URL")?;
            let path = options.get_filename();
            let fold_every = Duration::from_millis(settings.journal_fold_ms.max(1));
            store.journal = journal::Journal::open(path, fold_every)
                .context("cannot open the update journal")?;
            if store.journal.is_none() {
                tracing::warn!(
                    "another process holds this SQLite database's update journal: \
                     appending straight to the database"
                );
                let appender = appender::Appender::open(path)
                    .context("cannot open the SQLite database for the update log")?;
                store.appender = Some(Arc::new(appender));
            }
            store.spawn_checkpointer(CHECKPOINT_EVERY);
        }
        Ok(store)
    }

    /// SQLite: copies the WAL into the database file every `every`, without waiting for readers
    /// or writers (`PASSIVE`). With `synchronous=NORMAL` the checkpoint is where SQLite syncs the
    /// files; done by the commit that filled the WAL, as by default, it stalled that writer, and
    /// every writer queued behind it, for milliseconds.
    ///
    /// Under a steady stream of commits a passive checkpoint never catches up: frames arrive
    /// while it copies, so the log never starts over and would grow without bound (500 commits
    /// a second add about 6 MB a second). Past [`WAL_RESTART_FRAMES`] the checkpoint runs once
    /// more with this process's writers held back, so the next commit starts the log over. That
    /// pause (two syncs: up to 100 ms on a slow disk) is why the bound is high: at 4 096 pages
    /// it came every few seconds of such a load and showed in the p99 of every writer. Stops
    /// when the last clone of the store is dropped.
    fn spawn_checkpointer(&self, every: Duration) {
        let (db, alive) = match &self.writers {
            Some(lock) => (self.db.clone(), Arc::downgrade(lock)),
            None => return,
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if alive.strong_count() == 0 {
                    return;
                }
                match checkpoint(&db).await {
                    Ok(frames) if frames > WAL_RESTART_FRAMES => {
                        let Some(writers) = alive.upgrade() else {
                            return;
                        };
                        let _turn = writers.write().await;
                        if let Err(e) = checkpoint(&db).await {
                            tracing::warn!(error = %e, "WAL checkpoint failed");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                }
            }
        });
    }

    /// Wraps an existing connection (tests, tools).
    pub fn from_connection(db: DatabaseConnection) -> SqlStore {
        let writers = (db.get_database_backend() == DbBackend::Sqlite)
            .then(|| Arc::new(turns::WriteTurns::default()));
        SqlStore {
            db,
            writers,
            journal: None,
            appender: None,
        }
    }

    /// The underlying connection, for migrations, tools and tests. Application code goes
    /// through the ports.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        Migrator::up(&self.db, None)
            .await
            .context("cannot migrate the database")
    }

    /// How many migrations are not applied yet (0 when the schema is current). Creates nothing.
    pub async fn pending_migrations(&self) -> anyhow::Result<usize> {
        let pending = Migrator::get_pending_migrations_read_only(&self.db)
            .await
            .context("cannot read the migration status")?;
        Ok(pending.len())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.db.ping().await.context("the database does not answer")
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Postgres => "postgres",
            DbBackend::Sqlite => "sqlite",
            _ => "unknown",
        }
    }

    /// Folds the update journal into the database, then closes the pool.
    pub async fn close(self) -> anyhow::Result<()> {
        self.fold_journal().await?;
        self.db.close().await.context("cannot close the pool")
    }

    /// SQLite files: stores every update appended so far in `document_updates` (see
    /// [`journal`]), so that what reads the table sees them. A no-op elsewhere.
    pub async fn fold_journal(&self) -> Result<(), mdcreator_domain::StoreError> {
        let Some(journal) = self.journal.clone() else {
            return Ok(());
        };
        let _turn = self.write_turn().await;
        tokio::task::spawn_blocking(move || journal.fold())
            .await
            .map_err(|e| {
                mdcreator_domain::StoreError::Unexpected(anyhow::anyhow!("fold task failed: {e}"))
            })?
            .map_err(|e| mdcreator_domain::StoreError::Unavailable(e.into()))?;
        Ok(())
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Taken before a SQLite write (and held until it commits); see [`turns`]. `None` on
    /// Postgres, where writers run concurrently. Writers of other processes on the same file
    /// still meet the busy timeout.
    pub(crate) async fn write_turn(&self) -> Option<turns::Turn> {
        match &self.writers {
            Some(turns) => Some(turns.write().await),
            None => None,
        }
    }

    /// [`SqlStore::write_turn`] for an append to the Yjs update log, which goes ahead of other
    /// queued writes.
    pub(crate) async fn append_turn(&self) -> Option<turns::Turn> {
        match &self.writers {
            Some(turns) => Some(turns.append().await),
            None => None,
        }
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at `BEGIN`
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later cannot
    /// upgrade its lock while another writer holds it and fails with `SQLITE_BUSY` at once,
    /// whereas waiting at `BEGIN` honours the busy timeout.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        match self.backend() {
            DbBackend::Sqlite => {
                self.db
                    .begin_with_options(TransactionOptions {
                        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                        ..TransactionOptions::default()
                    })
                    .await
            }
            _ => self.db.begin().await,
        }
    }
}

/// Runs a passive checkpoint; returns the number of frames in the WAL.
async fn checkpoint(db: &DatabaseConnection) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(PASSIVE)",
        ))
        .await?;
    // Columns: busy, log (frames in the WAL), checkpointed.
    row.map_or(Ok(0), |row| row.try_get_by_index::<i64>(1))
}

fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

//! SQLite: appends to the Yjs update log on a connection of their own, on the caller's thread.
//!
//! A live room stores every update before relaying it, hundreds of times a second. Through the
//! pool, each append cost two hops to one of sqlx's per-connection threads, and, because the pool
//! hands its connections out in turn, a page cache made stale by the other connections' commits
//! (the profile of a 500 updates/s benchmark showed 42 % of the server's CPU on those threads).
//! This connection keeps its pages and its statement, and commits in tens of microseconds
//! without leaving the thread: with `synchronous=NORMAL` a WAL commit writes but does not sync.
//! The price: when the disk stalls a write (a journal commit, a checkpoint's sync; 3-13 ms seen
//! about once a second under 500 commits/s on a slow disk), the thread's other rooms and sockets
//! wait too, where before only the writers queued behind the lock did.
//!
//! It never waits for SQLite's lock. Writers of this process queue on `SqlStore::append_turn`
//! before coming here; a lock held by anyone else (another process, a write that does not
//! queue) makes it give way with [`AppendError::Busy`], and the caller goes through the pool,
//! whose connections wait off the async workers.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use uuid::Uuid;

use crate::collab::SQLITE_APPEND;

pub(crate) struct Appender {
    conn: Mutex<Connection>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AppendError {
    /// Someone else holds the database's write lock.
    #[error("the database is locked")]
    Busy,
    #[error(transparent)]
    Failed(rusqlite::Error),
}

impl From<rusqlite::Error> for AppendError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => AppendError::Busy,
            _ => AppendError::Failed(e),
        }
    }
}

impl std::fmt::Debug for Appender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender").finish_non_exhaustive()
    }
}

impl Appender {
    /// Opens the existing database file with the settings of the pool's connections (see
    /// `SqlStore::connect`); the statement is prepared at the first append, so the table may
    /// be created after this.
    pub(crate) fn open(path: &Path) -> rusqlite::Result<Appender> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::ZERO)?;
        // As on the pool's connections (see `plans`).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;",
        )?;
        Ok(Appender {
            conn: Mutex::new(conn),
        })
    }

    /// Stores `updates` in order, in one transaction, as the pool would (the same statement, and
    /// the same encodings as sqlx's: the id as a 16-byte blob, the time as RFC 3339); returns
    /// the last one's id. Stores nothing when the document does not exist.
    pub(crate) fn append(
        &self,
        document: Uuid,
        updates: &[Vec<u8>],
        at: DateTime<Utc>,
    ) -> Result<i64, AppendError> {
        let at = at.to_rfc3339_opts(SecondsFormat::AutoSi, false);
        // A panic mid-append rolled its transaction back (see `Rollback`).
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        // BEGIN and COMMIT are prepared once too: `Connection::transaction` parses them again
        // on every call, about 5 % of the server's CPU at 500 appends/s.
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let open = Rollback(&conn);
        let mut id = 0;
        {
            let mut insert = conn.prepare_cached(SQLITE_APPEND)?;
            for update in updates {
                // No row: no such document (the transaction rolls back as `open` drops).
                id = insert.query_row(
                    (
                        document.as_bytes().as_slice(),
                        update.as_slice(),
                        at.as_str(),
                    ),
                    |row| row.get(0),
                )?;
            }
        }
        conn.prepare_cached("COMMIT")?.execute([])?;
        std::mem::forget(open);
        Ok(id)
    }
}

/// Rolls back the open transaction when dropped (an error or a panic before `COMMIT`).
struct Rollback<'a>(&'a Connection);

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        // Nothing to do when SQLite already rolled back (some errors end the transaction).
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

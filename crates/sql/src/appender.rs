//! SQLite: appends to the Yjs update log on a connection of their own, on the caller's thread,
//! when the update journal (see `journal`) is held by another process; otherwise appends go
//! there.
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

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, ffi};
use uuid::Uuid;

use crate::collab::{SQLITE_INSERT, SQLITE_LAST_ID};

/// Documents whose last id the appender remembers, at most (see [`Writer::last_ids`]).
const REMEMBERED_DOCUMENTS: usize = 10_000;

pub(crate) struct Appender {
    writer: Mutex<Writer>,
}

struct Writer {
    conn: Connection,
    /// The last id this connection gave each document it appended to, so that an append needs
    /// no query for it ([`SQLITE_LAST_ID`] costs about a fifth of an append). Valid only while
    /// nothing else wrote to the database: emptied whenever the data version moved since
    /// `seen`.
    last_ids: HashMap<Uuid, i64>,
    /// The database's data version right after this connection's last commit.
    seen: Option<u32>,
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
            writer: Mutex::new(Writer {
                conn,
                last_ids: HashMap::new(),
                seen: None,
            }),
        })
    }

    /// Stores `updates` in order, in one transaction, as the pool would (the same statements, and
    /// the same encodings as sqlx's: the id as a 16-byte blob, the time as RFC 3339); returns
    /// the last one's id. Stores nothing when the document does not exist.
    pub(crate) fn append(
        &self,
        document: Uuid,
        updates: &[Vec<u8>],
        at: DateTime<Utc>,
    ) -> Result<i64, AppendError> {
        let at = at.to_rfc3339_opts(SecondsFormat::AutoSi, false);
        // A panic mid-append rolled its transaction back (see `Rollback`), and left `last_ids`
        // and `seen` as they were before it.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Writer {
            conn,
            last_ids,
            seen,
        } = &mut *writer;
        // BEGIN and COMMIT are prepared once too: `Connection::transaction` parses them again
        // on every call, about 5 % of the server's CPU at 500 appends/s.
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let open = Rollback(conn);
        // Another connection (a compaction, an append through the pool, another process)
        // committed since our last commit: what we remember may be stale.
        if *seen != Some(data_version(conn)?) {
            last_ids.clear();
        }
        let key = document;
        let document = document.as_bytes().as_slice();
        let mut id = match last_ids.get(&key) {
            Some(&id) => id,
            // No row: no such document (the transaction rolls back as `open` drops).
            None => conn
                .prepare_cached(SQLITE_LAST_ID)?
                .query_row([document], |row| row.get(0))?,
        };
        {
            let mut insert = conn.prepare_cached(SQLITE_INSERT)?;
            for update in updates {
                id += 1;
                insert.execute((document, id, update.as_slice(), at.as_str()))?;
            }
        }
        conn.prepare_cached("COMMIT")?.execute([])?;
        std::mem::forget(open);
        // Committed: from here on nothing may fail (`None` forgets the ids at the next append).
        *seen = data_version(conn).ok();
        if last_ids.len() >= REMEMBERED_DOCUMENTS {
            last_ids.clear();
        }
        last_ids.insert(key, id);
        Ok(id)
    }
}

/// The main database's data version: it changes with every commit, this connection's or
/// another's (`SQLITE_FCNTL_DATA_VERSION`). Current within a transaction; right after this
/// connection's own commit, it counts that commit.
fn data_version(conn: &Connection) -> rusqlite::Result<u32> {
    let mut version: u32 = 0;
    // SAFETY: the handle is the open connection the caller holds exclusively for this call;
    // SQLITE_FCNTL_DATA_VERSION writes one u32 through the pointer, which outlives the call.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_DATA_VERSION,
            (&raw mut version).cast::<c_void>(),
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(version)
    } else {
        Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
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

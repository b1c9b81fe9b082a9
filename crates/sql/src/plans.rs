//! SQLite: query plans that do not depend on bound values, so prepared statements stay prepared.
//!
//! SQLite compiles the value bound to `LIMIT ?` into a statement's plan, and marks the statement
//! expired at the next bind of that parameter, whatever the new value: the next `sqlite3_step`
//! parses and plans the statement again. sea-orm's `.one()` is `LIMIT ?` bound to 1, so every
//! such query of the pool's statement cache was re-prepared on every execution (6 % of the
//! samples in a profile of `bench/collab-rust`'s config d, most of it the access checks of live
//! sockets). The query planner stability guarantee (QPSG) makes plans independent of bound
//! values (and of `sqlite_stat` tables, which we never create), so the statement cache does what
//! it is for: `GET /documents/{id}` on SQLite serves 37 % more requests (`bench/http/README.md`).

use std::ffi::c_int;
use std::ptr::NonNull;

use rusqlite::ffi;

/// Turns the QPSG on for `db`; returns whether it is on afterwards.
pub(crate) fn stabilize(db: NonNull<ffi::sqlite3>) -> bool {
    config(db, 1)
}

/// `1` turns the QPSG on, `0` off, `-1` leaves it; returns whether it is on.
fn config(db: NonNull<ffi::sqlite3>, value: c_int) -> bool {
    let mut on: c_int = 0;
    // SAFETY: `db` is an open connection that the caller holds exclusively for this call;
    // SQLITE_DBCONFIG_ENABLE_QPSG takes an int and a pointer to an int that SQLite writes the
    // resulting state to (both as the variadic arguments' documented types).
    let rc = unsafe {
        ffi::sqlite3_db_config(
            db.as_ptr(),
            ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
            value,
            &mut on as *mut c_int,
        )
    };
    rc == ffi::SQLITE_OK && on != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqlSettings, SqlStore};
    use rusqlite::{Connection, StatementStatus};

    /// Executes `SELECT … LIMIT ?` three times on one cached statement; returns how many times
    /// SQLite had to prepare it again.
    fn reprepares(conn: &Connection) -> i32 {
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
            .unwrap();
        let mut stmt = conn
            .prepare("SELECT id FROM t WHERE id = ?1 LIMIT ?2")
            .unwrap();
        for _ in 0..3 {
            let id: i64 = stmt.query_row((1, 1), |row| row.get(0)).unwrap();
            assert_eq!(id, 1);
        }
        stmt.get_status(StatementStatus::RePrepare)
    }

    #[test]
    fn a_bound_limit_costs_a_prepare_per_execution_unless_plans_are_stable() {
        let plain = Connection::open_in_memory().unwrap();
        assert!(
            reprepares(&plain) >= 2,
            "SQLite re-plans `LIMIT ?` by default"
        );

        let stable = Connection::open_in_memory().unwrap();
        // SAFETY: the handle of an open connection, used only while `stable` lives.
        let handle = NonNull::new(unsafe { stable.handle() }).unwrap();
        assert!(!config(handle, -1));
        assert!(stabilize(handle));
        assert_eq!(reprepares(&stable), 0);
    }

    #[tokio::test]
    async fn every_pooled_sqlite_connection_has_stable_plans() {
        let path = std::env::temp_dir().join(format!("mdc-plans-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let settings = SqlSettings {
            max_connections: 3,
            ..SqlSettings::default()
        };
        let store = SqlStore::connect(&url, &settings).await.unwrap();
        let pool = store.connection().get_sqlite_connection_pool();
        // Held at once, so that the pool opens three distinct connections.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pool.acquire().await.unwrap());
        }
        for conn in &mut held {
            let mut handle = conn.lock_handle().await.unwrap();
            assert!(config(handle.as_raw_handle().cast(), -1));
        }
        drop(held);
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

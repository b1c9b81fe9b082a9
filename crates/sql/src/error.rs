//! Database errors at the boundary: what the domain may see of a `DbErr`.

use mdcreator_domain::StoreError;
use mdcreator_domain::feed::CommitError;
use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// A storage failure: unreachable/overloaded database → `Unavailable`, anything else →
/// `Unexpected`.
pub(crate) fn store_error(e: DbErr) -> StoreError {
    if is_transient(&e) {
        StoreError::Unavailable(e.into())
    } else {
        StoreError::Unexpected(e.into())
    }
}

/// A failed write of a batch to `table`: unique keys → `Duplicate`, missing referenced rows →
/// `Stale` (the row the write depends on is gone), the rest as [`store_error`].
pub(crate) fn write_error(table: &'static str, e: DbErr) -> CommitError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => CommitError::Duplicate(table),
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => CommitError::Stale(table),
        _ => CommitError::Store(store_error(e)),
    }
}

pub(crate) fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// A stored value this adapter cannot turn back into a domain value.
pub(crate) fn corrupt(what: &str, value: impl std::fmt::Debug) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("unreadable stored {what}: {value:?}"))
}

/// Whether retrying later can help: no connection, pool exhausted, server going away,
/// statement timeout, lock timeout or deadlock.
fn is_transient(e: &DbErr) -> bool {
    let runtime = match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    use sea_orm::sqlx::Error as X;
    match &**sqlx {
        X::Io(_) | X::Tls(_) | X::PoolTimedOut | X::PoolClosed | X::WorkerCrashed => true,
        X::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            if db
                .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
                .is_some()
            {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
                return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            }
            // Postgres SQLSTATE: connection exception, insufficient resources, operator
            // intervention (incl. 57014 statement timeout), serialization failure, deadlock.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "40001"
                || code == "40P01"
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnAcquireErr;

    #[test]
    fn pool_and_connection_failures_are_unavailable() {
        for e in [
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            DbErr::Conn(RuntimeErr::Internal("refused".into())),
            DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
                sea_orm::sqlx::Error::PoolTimedOut,
            ))),
        ] {
            assert!(matches!(store_error(e), StoreError::Unavailable(_)));
        }
        for e in [
            DbErr::Custom("bug".into()),
            DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
                sea_orm::sqlx::Error::RowNotFound,
            ))),
        ] {
            assert!(matches!(store_error(e), StoreError::Unexpected(_)));
        }
    }
}

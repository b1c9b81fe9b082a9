//! `Idempotency-Key` storage: claimed by an insert that does nothing on conflict, so two racing
//! requests cannot both win; an expired entry is taken over by a guarded update.

use chrono::{DateTime, Utc};
use mdcreator_domain::idempotency::{Claim, IdempotencyStore, StoredResponse};
use mdcreator_domain::{StoreError, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TryInsertResult};

use crate::SqlStore;
use crate::entity::idempotency_keys;
use crate::error::store_error;
use crate::rows;

/// A claim races with releases and expiries of the same key; give up after this many rounds.
const CLAIM_ATTEMPTS: usize = 4;

#[async_trait::async_trait]
impl IdempotencyStore for SqlStore {
    async fn claim(
        &self,
        user: UserId,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        use idempotency_keys::Column as C;
        let fresh = || idempotency_keys::ActiveModel {
            user_id: Set(user.0),
            key: Set(key.to_owned()),
            request_hash: Set(request_hash.to_owned()),
            status: Set(None),
            response_headers: Set(None),
            response_body: Set(None),
            created_at: Set(now),
            expires_at: Set(expires_at),
        };
        for _ in 0..CLAIM_ATTEMPTS {
            let inserted = idempotency_keys::Entity::insert(fresh())
                .on_conflict_do_nothing()
                .exec_without_returning(&self.db)
                .await
                .map_err(store_error)?;
            if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
                return Ok(Claim::Claimed);
            }
            // Taken. An expired entry counts as absent: take it over, atomically.
            let replaced = idempotency_keys::Entity::update_many()
                .set(fresh())
                .filter(C::UserId.eq(user.0))
                .filter(C::Key.eq(key))
                .filter(C::ExpiresAt.lt(now))
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            if replaced.rows_affected > 0 {
                return Ok(Claim::Claimed);
            }
            let existing = idempotency_keys::Entity::find_by_id((user.0, key.to_owned()))
                .one(&self.db)
                .await
                .map_err(store_error)?;
            if let Some(row) = existing {
                return Ok(Claim::Existing {
                    request_hash: row.request_hash,
                    response: rows::stored_response(
                        row.status,
                        row.response_headers,
                        row.response_body,
                    )?,
                });
            }
            // Released between our insert and our read: try again.
        }
        Err(StoreError::Unexpected(anyhow::anyhow!(
            "idempotency key kept changing while being claimed"
        )))
    }

    async fn complete(
        &self,
        user: UserId,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        use idempotency_keys::Column as C;
        let row = idempotency_keys::ActiveModel {
            status: Set(Some(i32::from(response.status))),
            response_headers: Set(Some(rows::headers_json(&response.headers))),
            response_body: Set(Some(response.body.clone())),
            ..Default::default()
        };
        idempotency_keys::Entity::update_many()
            .set(row)
            .filter(C::UserId.eq(user.0))
            .filter(C::Key.eq(key))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn release(&self, user: UserId, key: &str) -> Result<(), StoreError> {
        idempotency_keys::Entity::delete_by_id((user.0, key.to_owned()))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

//! Users and the built-in identity's accounts, refresh tokens and signing keys.

use chrono::{DateTime, Utc};
use mdcreator_domain::identity::local::{
    AccountStoreError, LocalAccount, LocalAccountStore, RefreshToken, RefreshTokenStore,
    SigningKey, SigningKeyStore,
};
use mdcreator_domain::users::{User, UserRepository};
use mdcreator_domain::{Email, StoreError, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, TryInsertResult};
use uuid::Uuid;

use crate::SqlStore;
use crate::entity::{local_accounts, refresh_tokens, signing_keys, users};
use crate::error::{is_unique_violation, store_error};
use crate::rows;

#[async_trait::async_trait]
impl UserRepository for SqlStore {
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = users::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(rows::user).transpose()
    }

    async fn user_by_subject(&self, subject: &str) -> Result<Option<User>, StoreError> {
        let row = users::Entity::find()
            .filter(users::Column::Subject.eq(subject))
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(rows::user).transpose()
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let row = users::Entity::find()
            .filter(users::Column::Email.eq(rows::stored_email(email)))
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(rows::user).transpose()
    }
}

#[async_trait::async_trait]
impl LocalAccountStore for SqlStore {
    async fn create_account(
        &self,
        user: &User,
        account: &LocalAccount,
    ) -> Result<(), AccountStoreError> {
        let _turn = self.write_turn().await;
        let txn = self.begin_write().await.map_err(account_error)?;
        let inserted = async {
            users::Entity::insert(rows::user_row(user))
                .exec_without_returning(&txn)
                .await?;
            local_accounts::Entity::insert(rows::local_account_row(account, user.created_at))
                .exec_without_returning(&txn)
                .await
        }
        .await;
        match inserted {
            Ok(_) => txn.commit().await.map_err(account_error),
            Err(e) => {
                if let Err(rollback) = txn.rollback().await {
                    tracing::warn!(error = %rollback, "rollback failed");
                }
                Err(account_error(e))
            }
        }
    }

    async fn account_by_email(&self, email: &Email) -> Result<Option<LocalAccount>, StoreError> {
        let row = local_accounts::Entity::find()
            .filter(local_accounts::Column::Email.eq(rows::stored_email(email)))
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(rows::local_account).transpose()
    }

    async fn account_by_user(&self, user: UserId) -> Result<Option<LocalAccount>, StoreError> {
        let row = local_accounts::Entity::find_by_id(user.0)
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(rows::local_account).transpose()
    }

    async fn update_account(&self, account: &LocalAccount) -> Result<(), StoreError> {
        let mut row = local_accounts::ActiveModel {
            password_hash: Set(account.password_hash.clone()),
            verified: Set(account.verified),
            updated_at: Set(Utc::now()),
            ..Default::default()
        };
        rows::set_code(&mut row, account.code.as_ref());
        local_accounts::Entity::update_many()
            .set(row)
            .filter(local_accounts::Column::UserId.eq(account.user_id.0))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl RefreshTokenStore for SqlStore {
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError> {
        refresh_tokens::Entity::insert(rows::refresh_token_row(token))
            .exec_without_returning(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn refresh_token_by_hash(&self, hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        let row = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(hash))
            .one(&self.db)
            .await
            .map_err(store_error)?;
        Ok(row.map(rows::refresh_token))
    }

    async fn rotate_refresh_token(
        &self,
        old: Uuid,
        new: &RefreshToken,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        use refresh_tokens::Column as C;
        let _turn = self.write_turn().await;
        let txn = self.begin_write().await.map_err(store_error)?;
        let rotated = async {
            let revoked = refresh_tokens::Entity::update_many()
                .col_expr(C::RevokedAt, Expr::value(at))
                .col_expr(C::ReplacedBy, Expr::value(new.id))
                .filter(C::Id.eq(old))
                .filter(C::RevokedAt.is_null())
                .exec(&txn)
                .await?;
            if revoked.rows_affected != 1 {
                return Ok(false);
            }
            refresh_tokens::Entity::insert(rows::refresh_token_row(new))
                .exec_without_returning(&txn)
                .await?;
            Ok::<_, DbErr>(true)
        }
        .await;
        match rotated {
            Ok(true) => {
                txn.commit().await.map_err(store_error)?;
                Ok(true)
            }
            other => {
                if let Err(rollback) = txn.rollback().await {
                    tracing::warn!(error = %rollback, "rollback failed");
                }
                other.map_err(store_error)
            }
        }
    }

    async fn revoke_refresh_family(
        &self,
        family: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        use refresh_tokens::Column as C;
        refresh_tokens::Entity::update_many()
            .col_expr(C::RevokedAt, Expr::value(at))
            .filter(C::FamilyId.eq(family))
            .filter(C::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn revoke_user_refresh_tokens(
        &self,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        use refresh_tokens::Column as C;
        refresh_tokens::Entity::update_many()
            .col_expr(C::RevokedAt, Expr::value(at))
            .filter(C::UserId.eq(user.0))
            .filter(C::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl SigningKeyStore for SqlStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let found = signing_keys::Entity::find()
            .order_by_desc(signing_keys::Column::CreatedAt)
            .order_by_desc(signing_keys::Column::Kid)
            .all(&self.db)
            .await
            .map_err(store_error)?;
        Ok(found.into_iter().map(rows::signing_key).collect())
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<bool, StoreError> {
        let result = signing_keys::Entity::insert(rows::signing_key_row(key))
            .on_conflict_do_nothing()
            .exec_without_returning(&self.db)
            .await
            .map_err(store_error)?;
        Ok(matches!(result, TryInsertResult::Inserted(n) if n > 0))
    }
}

fn account_error(e: DbErr) -> AccountStoreError {
    if is_unique_violation(&e) {
        AccountStoreError::Duplicate
    } else {
        AccountStoreError::Store(store_error(e))
    }
}

//! Personal API tokens.

use chrono::{DateTime, Utc};
use mdcreator_domain::api_tokens::{ApiScope, ApiToken, ApiTokenRepository};
use mdcreator_domain::{StoreError, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::SqlStore;
use crate::entity::api_tokens;
use crate::error::{corrupt, store_error};

#[async_trait::async_trait]
impl ApiTokenRepository for SqlStore {
    async fn api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>, StoreError> {
        api_tokens::Entity::find()
            .filter(api_tokens::Column::UserId.eq(user.0))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .order_by_desc(api_tokens::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(token)
            .collect()
    }

    async fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        api_tokens::Entity::find()
            .filter(api_tokens::Column::TokenHash.eq(hash))
            .one(&self.db)
            .await
            .map_err(store_error)?
            .map(token)
            .transpose()
    }

    async fn insert_api_token(&self, t: &ApiToken) -> Result<(), StoreError> {
        let row = api_tokens::ActiveModel {
            id: Set(t.id),
            user_id: Set(t.user_id.0),
            name: Set(t.name.clone()),
            prefix: Set(t.prefix.clone()),
            token_hash: Set(t.token_hash.clone()),
            scope: Set(t.scope.as_str().to_owned()),
            expires_at: Set(t.expires_at),
            last_used_at: Set(t.last_used_at),
            revoked_at: Set(t.revoked_at),
            created_at: Set(t.created_at),
        };
        api_tokens::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn revoke_api_token(
        &self,
        user: UserId,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::RevokedAt, Expr::value(at))
            .filter(api_tokens::Column::Id.eq(id))
            .filter(api_tokens::Column::UserId.eq(user.0))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected == 1)
    }

    async fn touch_api_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::LastUsedAt, Expr::value(at))
            .filter(api_tokens::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

fn token(m: api_tokens::Model) -> Result<ApiToken, StoreError> {
    let scope = ApiScope::parse(&m.scope).ok_or_else(|| corrupt("api token scope", &m.scope))?;
    Ok(ApiToken {
        id: m.id,
        user_id: UserId(m.user_id),
        name: m.name,
        prefix: m.prefix,
        token_hash: m.token_hash,
        scope,
        expires_at: m.expires_at,
        last_used_at: m.last_used_at,
        revoked_at: m.revoked_at,
        created_at: m.created_at,
    })
}

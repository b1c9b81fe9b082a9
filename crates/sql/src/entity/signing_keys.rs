//! `signing_keys`: Built-in identity only: JWT signing keys (private key as PKCS#8 DER).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub kid: String,
    #[sea_orm(column_type = "Text")]
    pub algorithm: String,
    #[sea_orm(column_type = "Blob")]
    pub private_key: Vec<u8>,
    #[sea_orm(column_type = "JsonBinary")]
    pub public_jwk: Json,
    pub created_at: DateTimeUtc,
    pub retired_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

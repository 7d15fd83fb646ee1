use sea_orm::entity::prelude::*;

use crate::enums::{HoldSource, HoldStatus};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "holds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub tier_id: Option<Uuid>,
    pub quantity: i32,
    pub status: HoldStatus,
    pub source: HoldSource,
    pub expires_at: DateTimeUtc,
    pub max_expires_at: DateTimeUtc,
    /// When the buyer was warned that the hold is about to expire (cleared by an extension).
    pub expiry_warned_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

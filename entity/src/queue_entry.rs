use sea_orm::entity::prelude::*;

use crate::enums::QueueStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "queue_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub event_id: Uuid,
    pub user_id: Uuid,
    pub status: QueueStatus,
    pub joined_at: DateTimeUtc,
    pub shuffle_key: i64,
    pub position: Option<i64>,
    pub admitted_at: Option<DateTimeUtc>,
    pub pass_expires_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

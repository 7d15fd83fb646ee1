use sea_orm::entity::prelude::*;

use crate::enums::TicketStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tickets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub order_id: Uuid,
    pub order_line_id: Uuid,
    pub event_id: Uuid,
    pub tier_id: Uuid,
    pub seat_id: Option<Uuid>,
    pub status: TicketStatus,
    pub nonce: String,
    pub checked_in_at: Option<DateTimeUtc>,
    pub checked_in_gate: Option<String>,
    pub checked_in_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub cancelled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

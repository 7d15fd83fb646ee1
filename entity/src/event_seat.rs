use sea_orm::entity::prelude::*;

use crate::enums::SeatStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "event_seats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seat_id: Uuid,
    pub section_id: Uuid,
    pub tier_id: Uuid,
    pub status: SeatStatus,
    pub hold_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
    pub version: i64,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

use sea_orm::entity::prelude::*;

/// One numbered change of an event's inventory: every seat it changed, packed (see
/// `seatstorm::events::changelog`), so a batch of hundreds of seats is one row, not hundreds.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "seat_changes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub seats: Vec<u8>,
    pub changed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

use sea_orm::entity::prelude::*;

/// The counters of one event's waiting room.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "event_queues")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: Uuid,
    /// Positions handed out so far (the last one).
    pub last_position: i64,
    /// Shoppers admitted so far.
    pub admitted_count: i64,
    /// The highest position admitted.
    pub admitted_through: i64,
    /// When the pre-queue was put in random order (at the on-sale).
    pub shuffled_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

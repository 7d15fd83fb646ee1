use sea_orm::entity::prelude::*;

use crate::enums::{EventCategory, EventStatus};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub venue_id: Uuid,
    pub organizer_id: Uuid,
    pub title: String,
    pub performer: String,
    pub category: EventCategory,
    pub description: String,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    pub sale_starts_at: DateTimeUtc,
    pub status: EventStatus,
    pub waiting_room_required: bool,
    pub admission_rate_per_minute: i32,
    pub max_active_shoppers: i32,
    pub max_tickets_per_user: i32,
    pub published_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

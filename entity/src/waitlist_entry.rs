use sea_orm::entity::prelude::*;

use crate::enums::WaitlistStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "waitlist_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub tier_id: Option<Uuid>,
    pub section_id: Option<Uuid>,
    pub quantity: i32,
    pub status: WaitlistStatus,
    pub offered_hold_id: Option<Uuid>,
    pub offer_expires_at: Option<DateTimeUtc>,
    /// When the offer was pushed to the buyer (once, by whichever instance claimed it).
    pub offer_announced_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

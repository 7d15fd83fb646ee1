use sea_orm::entity::prelude::*;

use crate::enums::SectionKind;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub venue_id: Uuid,
    pub name: String,
    pub kind: SectionKind,
    pub capacity: i32,
    pub sort_order: i32,
    pub x: f64,
    pub y: f64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

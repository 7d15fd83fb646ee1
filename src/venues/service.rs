use chrono::{DateTime, Utc};
use entity::enums::SectionKind;
use entity::prelude::*;
use entity::{seat, section, venue};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::gql::Cursor;
use crate::venues::layout::SeatSpec;

/// Venues ordered by name, `limit` of them after `after`.
pub async fn list_venues(
    db: &impl ConnectionTrait,
    after: Option<&Cursor>,
    limit: usize,
) -> AppResult<Vec<venue::Model>> {
    let mut query = Venue::find()
        .order_by_asc(venue::Column::Name)
        .order_by_asc(venue::Column::Id)
        .limit(limit as u64);
    if let Some(cursor) = after {
        query = query.filter(
            Condition::any()
                .add(venue::Column::Name.gt(cursor.key.as_str()))
                .add(
                    Condition::all()
                        .add(venue::Column::Name.eq(cursor.key.as_str()))
                        .add(venue::Column::Id.gt(cursor.id)),
                ),
        );
    }
    Ok(query.all(db).await?)
}

pub async fn find_venue(db: &impl ConnectionTrait, id: Uuid) -> AppResult<venue::Model> {
    Venue::find_by_id(id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("venue"))
}

pub async fn venues_by_ids(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<venue::Model>> {
    Ok(Venue::find()
        .filter(venue::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// Sections of the given venues in drawing order.
pub async fn sections_of_venues(
    db: &impl ConnectionTrait,
    venue_ids: &[Uuid],
) -> AppResult<Vec<section::Model>> {
    Ok(Section::find()
        .filter(section::Column::VenueId.is_in(venue_ids.iter().copied()))
        .order_by_asc(section::Column::SortOrder)
        .all(db)
        .await?)
}

/// A venue to create, with its sections.
#[derive(Debug, Clone)]
pub struct NewVenue {
    pub owner_id: Uuid,
    pub name: String,
    pub city: String,
    pub address: String,
    pub timezone: String,
    pub description: Option<String>,
    pub sections: Vec<NewSection>,
}

/// A section to create: reserved with its seats, or general admission with a standing capacity.
#[derive(Debug, Clone)]
pub struct NewSection {
    pub name: String,
    pub kind: SectionKind,
    pub standing_capacity: i32,
    pub position: (f64, f64),
    pub seats: Vec<SeatSpec>,
}

/// Creates a venue, its sections and their seats. Runs in the caller's transaction.
pub async fn create_venue(
    db: &impl ConnectionTrait,
    new: NewVenue,
    now: DateTime<Utc>,
) -> AppResult<venue::Model> {
    let venue = venue::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(new.owner_id),
        name: Set(new.name),
        city: Set(new.city),
        address: Set(new.address),
        timezone: Set(new.timezone),
        description: Set(new.description),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    for (sort_order, section) in new.sections.into_iter().enumerate() {
        let capacity = match section.kind {
            SectionKind::Reserved => i32::try_from(section.seats.len())
                .map_err(|_| AppError::bad_input("a section has too many seats"))?,
            SectionKind::GeneralAdmission => section.standing_capacity,
        };
        let section_id = Uuid::now_v7();
        section::ActiveModel {
            id: Set(section_id),
            venue_id: Set(venue.id),
            name: Set(section.name),
            kind: Set(section.kind),
            capacity: Set(capacity),
            sort_order: Set(sort_order as i32),
            x: Set(section.position.0),
            y: Set(section.position.1),
        }
        .insert(db)
        .await?;
        if section.kind != SectionKind::Reserved {
            continue;
        }
        let seats: Vec<seat::ActiveModel> = section
            .seats
            .into_iter()
            .map(|spec| seat::ActiveModel {
                id: Set(Uuid::now_v7()),
                venue_id: Set(venue.id),
                section_id: Set(section_id),
                row_label: Set(spec.row_label),
                row_index: Set(spec.row_index),
                number: Set(spec.number),
                x: Set(spec.x),
                y: Set(spec.y),
                accessible: Set(false),
            })
            .collect();
        // Bounded batches keep every INSERT under SQLite's bound-parameter limit.
        for chunk in seats.chunks(2000) {
            Seat::insert_many(chunk.to_vec())
                .exec_without_returning(db)
                .await?;
        }
    }
    Ok(venue)
}

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::enums::SectionKind;
use entity::prelude::*;
use entity::{seat, section, venue};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use crate::auth::Viewer;
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

/// Most sections and seats one venue may have.
pub const MAX_SECTIONS: usize = 200;
pub const MAX_SEATS: usize = 100_000;

fn check_text(value: &str, field: &str, max_chars: usize) -> AppResult<()> {
    if value.trim().is_empty() || value.chars().count() > max_chars {
        return Err(AppError::bad_input(format!(
            "{field} must be 1 to {max_chars} characters"
        )));
    }
    Ok(())
}

/// Checks a venue before anything is written, so a bad layout never leaves half a venue behind.
fn validate_venue(new: &NewVenue) -> AppResult<()> {
    check_text(&new.name, "name", 200)?;
    check_text(&new.city, "city", 100)?;
    check_text(&new.address, "address", 300)?;
    check_text(&new.timezone, "timezone", 64)?;
    if new.sections.is_empty() || new.sections.len() > MAX_SECTIONS {
        return Err(AppError::bad_input(format!(
            "a venue has 1 to {MAX_SECTIONS} sections"
        )));
    }
    let mut names = HashSet::new();
    let mut total_seats = 0usize;
    for section in &new.sections {
        check_text(&section.name, "section name", 100)?;
        if !names.insert(section.name.trim().to_lowercase()) {
            return Err(AppError::bad_input(format!(
                "section name {:?} is used twice",
                section.name
            )));
        }
        match section.kind {
            SectionKind::GeneralAdmission => {
                if !(1..=1_000_000).contains(&section.standing_capacity)
                    || !section.seats.is_empty()
                {
                    return Err(AppError::bad_input(
                        "a general-admission section has a standing capacity of 1 to 1000000 and no seats",
                    ));
                }
            }
            SectionKind::Reserved => {
                if section.seats.is_empty() {
                    return Err(AppError::bad_input(
                        "a reserved section needs seats (a grid or a seat list)",
                    ));
                }
                let mut seen = HashSet::new();
                for seat in &section.seats {
                    check_text(&seat.row_label, "row", 10)?;
                    if seat.number < 1 {
                        return Err(AppError::bad_input("seat numbers start at 1"));
                    }
                    if !seen.insert((seat.row_label.as_str(), seat.number)) {
                        return Err(AppError::bad_input(format!(
                            "seat {}{} appears twice in section {}",
                            seat.row_label, seat.number, section.name
                        )));
                    }
                }
                total_seats += section.seats.len();
            }
        }
    }
    if total_seats > MAX_SEATS {
        return Err(AppError::bad_input(format!(
            "a venue has at most {MAX_SEATS} seats"
        )));
    }
    Ok(())
}

/// Creates a venue, its sections and their seats. Runs in the caller's transaction.
pub async fn create_venue(
    db: &impl ConnectionTrait,
    new: NewVenue,
    now: DateTime<Utc>,
) -> AppResult<venue::Model> {
    validate_venue(&new)?;
    let venue = venue::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(new.owner_id),
        name: Set(new.name.trim().to_owned()),
        city: Set(new.city.trim().to_owned()),
        address: Set(new.address.trim().to_owned()),
        timezone: Set(new.timezone.trim().to_owned()),
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
            name: Set(section.name.trim().to_owned()),
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
                accessible: Set(spec.accessible),
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

/// Creates a venue in a transaction of its own.
pub async fn create_venue_in_transaction(
    db: &DatabaseConnection,
    new: NewVenue,
) -> AppResult<venue::Model> {
    let txn = db.begin().await?;
    let venue = create_venue(&txn, new, Utc::now()).await?;
    txn.commit().await?;
    Ok(venue)
}

/// Venues the viewer owns (every venue for an admin), by name.
pub async fn list_managed_venues(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
) -> AppResult<Vec<venue::Model>> {
    let mut query = Venue::find().order_by_asc(venue::Column::Name);
    if !viewer.is_admin() {
        query = query.filter(venue::Column::OwnerId.eq(viewer.user_id));
    }
    Ok(query.all(db).await?)
}

//! The seat map of one event: every seat with its position and live status, grouped by section.
//!
//! Built from four queries whatever the venue size (sections with their tiers, then all seats in one
//! ordered join), so a 20,000-seat arena costs the same number of round trips as a club. The order
//! (sections by sort order, seats by row and number) is the one compact live snapshots use.

use std::collections::HashMap;

use entity::enums::{SeatStatus, SectionKind};
use entity::prelude::*;
use entity::{event_seat, event_section, seat, section, ticket_tier};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter};
use uuid::Uuid;

use crate::error::AppResult;

/// One section of the map with its seats (empty for a standing area).
#[derive(Debug, Clone)]
pub struct MapSection {
    pub section: section::Model,
    pub tier_id: Uuid,
    /// For a standing area: places left in its tier. For reserved seating: seats available.
    pub available: i32,
    pub seats: Vec<MapSeat>,
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct MapSeat {
    pub seat_id: Uuid,
    pub section_id: Uuid,
    pub tier_id: Uuid,
    pub status: SeatStatus,
    pub row_label: String,
    pub row_index: i32,
    pub number: i32,
    pub x: f64,
    pub y: f64,
    pub accessible: bool,
}

/// Loads the map of a (published) event. The caller checks that the event may be seen.
pub async fn load_seat_map(
    db: &impl ConnectionTrait,
    event_id: Uuid,
) -> AppResult<Vec<MapSection>> {
    let mappings = sections_of_event(db, event_id).await?;
    let tiers: HashMap<Uuid, ticket_tier::Model> = TicketTier::find()
        .filter(ticket_tier::Column::EventId.eq(event_id))
        .all(db)
        .await?
        .into_iter()
        .map(|tier| (tier.id, tier))
        .collect();

    let select = Query::select()
        .column((EventSeat, event_seat::Column::SeatId))
        .column((EventSeat, event_seat::Column::SectionId))
        .column((EventSeat, event_seat::Column::TierId))
        .column((EventSeat, event_seat::Column::Status))
        .column((Seat, seat::Column::RowLabel))
        .column((Seat, seat::Column::RowIndex))
        .column((Seat, seat::Column::Number))
        .column((Seat, seat::Column::X))
        .column((Seat, seat::Column::Y))
        .column((Seat, seat::Column::Accessible))
        .from(EventSeat)
        .inner_join(
            Seat,
            Expr::col((Seat, seat::Column::Id)).equals((EventSeat, event_seat::Column::SeatId)),
        )
        .and_where(Expr::col((EventSeat, event_seat::Column::EventId)).eq(event_id))
        .order_by((Seat, seat::Column::RowIndex), sea_orm::Order::Asc)
        .order_by((Seat, seat::Column::Number), sea_orm::Order::Asc)
        .order_by((Seat, seat::Column::Id), sea_orm::Order::Asc)
        .to_owned();
    let seats = MapSeat::find_by_statement(db.get_database_backend().build(&select))
        .all(db)
        .await?;
    let mut seats_by_section: HashMap<Uuid, Vec<MapSeat>> = HashMap::new();
    for seat in seats {
        seats_by_section
            .entry(seat.section_id)
            .or_default()
            .push(seat);
    }

    let mut sections: Vec<MapSection> = mappings
        .into_iter()
        .map(|(mapping, section)| {
            let seats = seats_by_section.remove(&section.id).unwrap_or_default();
            let available = match section.kind {
                SectionKind::Reserved => seats
                    .iter()
                    .filter(|seat| seat.status == SeatStatus::Available)
                    .count() as i32,
                SectionKind::GeneralAdmission => {
                    tiers.get(&mapping.tier_id).map_or(0, |tier| tier.available)
                }
            };
            MapSection {
                section,
                tier_id: mapping.tier_id,
                available,
                seats,
            }
        })
        .collect();
    // A total order: compact seat-map snapshots list statuses in it, so every read (and every
    // instance) must agree on it.
    sections.sort_by_key(|s| (s.section.sort_order, s.section.id));
    Ok(sections)
}

/// The sections an event sells, each with its mapping to a tier.
async fn sections_of_event(
    db: &impl ConnectionTrait,
    event_id: Uuid,
) -> AppResult<Vec<(event_section::Model, section::Model)>> {
    let mappings = EventSection::find()
        .filter(event_section::Column::EventId.eq(event_id))
        .all(db)
        .await?;
    let section_ids: Vec<Uuid> = mappings.iter().map(|m| m.section_id).collect();
    let mut sections: HashMap<Uuid, section::Model> = Section::find()
        .filter(section::Column::Id.is_in(section_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    Ok(mappings
        .into_iter()
        .filter_map(|m| sections.remove(&m.section_id).map(|s| (m, s)))
        .collect())
}

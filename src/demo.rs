//! Demo data for the embedded default: four venues (one a 18,000-place arena), six events across
//! categories, and one account per role. Seeded only into an empty database, in one transaction.
//!
//! Demo accounts (also in the README):
//! organizer@seatstorm.dev / seatstorm-organizer, staff@seatstorm.dev / seatstorm-staff,
//! customer@seatstorm.dev / seatstorm-customer, admin@seatstorm.dev / seatstorm-admin.

use std::f64::consts::PI;

use anyhow::Context;
use chrono::{DateTime, Duration, DurationRound, Utc};
use entity::enums::{EventCategory, Role, SectionKind, TierKind};
use entity::prelude::*;
use entity::{section, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, Set, TransactionTrait,
};
use uuid::Uuid;

use crate::auth::password::hash_password;
use crate::events::manage::{NewEvent, NewTier, create_event, publish_event};
use crate::venues::layout::GridLayout;
use crate::venues::service::{NewSection, NewVenue, create_venue};

/// The demo accounts: (email, password, name, role).
pub const DEMO_ACCOUNTS: [(&str, &str, &str, Role); 4] = [
    (
        "organizer@seatstorm.dev",
        "seatstorm-organizer",
        "Olivia Organizer",
        Role::Organizer,
    ),
    (
        "staff@seatstorm.dev",
        "seatstorm-staff",
        "Sam Staff",
        Role::Staff,
    ),
    (
        "customer@seatstorm.dev",
        "seatstorm-customer",
        "Casey Customer",
        Role::Customer,
    ),
    (
        "admin@seatstorm.dev",
        "seatstorm-admin",
        "Ada Admin",
        Role::Admin,
    ),
];

/// Seeds the demo unless the database already has users. Returns whether it seeded.
pub async fn seed_if_empty(db: &DatabaseConnection) -> anyhow::Result<bool> {
    if User::find().count(db).await? > 0 {
        return Ok(false);
    }
    let txn = db.begin().await?;
    seed(&txn).await?;
    txn.commit().await?;
    tracing::info!("seeded demo venues, events and accounts");
    Ok(true)
}

async fn seed(db: &impl ConnectionTrait) -> anyhow::Result<()> {
    let now = Utc::now();
    let organizer_id = seed_accounts(db, now).await?;

    let arena = create_venue(db, arena(organizer_id), now).await?;
    let theatre = create_venue(db, theatre(organizer_id), now).await?;
    let club = create_venue(db, club(organizer_id), now).await?;
    let park = create_venue(db, park(organizer_id), now).await?;

    let sections = |venue_id: Uuid| async move {
        Section::find()
            .filter(section::Column::VenueId.eq(venue_id))
            .all(db)
            .await
            .context("loading demo sections")
    };
    let arena_sections = sections(arena.id).await?;
    let theatre_sections = sections(theatre.id).await?;
    let club_sections = sections(club.id).await?;
    let park_sections = sections(park.id).await?;
    let pick = |all: &[section::Model], names: &[&str]| -> Vec<Uuid> {
        all.iter()
            .filter(|s| names.contains(&s.name.as_str()))
            .map(|s| s.id)
            .collect()
    };
    let lower_premium = ["101", "102", "103", "108", "109", "110"];
    let lower_vip = ["104", "105", "106", "107"];
    let lower: Vec<&str> = lower_vip
        .iter()
        .chain(lower_premium.iter())
        .copied()
        .collect();
    let upper = [
        "201", "202", "203", "204", "205", "206", "207", "208", "209", "210",
    ];

    // Evenings at 19:30 UTC, a few weeks out, so the demo always shows upcoming shows.
    let day = now.duration_trunc(Duration::days(1)).unwrap_or(now);
    let evening = |days: i64| day + Duration::days(days) + Duration::minutes(19 * 60 + 30);
    let on_sale_since = now - Duration::days(1);

    let events = [
        NewEvent {
            title: "Nova Lights: Afterglow World Tour".into(),
            performer: "Nova Lights".into(),
            category: EventCategory::Concert,
            description: "The most requested tour of the year. Expect a ticket war: the waiting room opens before the on-sale.".into(),
            waiting_room_required: true,
            admission_rate_per_minute: 500,
            max_active_shoppers: 2000,
            max_tickets_per_user: 4,
            tiers: vec![
                reserved("VIP", 24900, pick(&arena_sections, &lower_vip)),
                reserved("Premium", 14900, pick(&arena_sections, &lower_premium)),
                reserved("Standard", 7900, pick(&arena_sections, &upper)),
                general("Floor (standing)", 11900, 2000, pick(&arena_sections, &["Floor"])),
            ],
            ..event(arena.id, organizer_id, evening(21), 3, on_sale_since)
        },
        NewEvent {
            title: "Harbor Hawks vs. Mountain Lions".into(),
            performer: "Harbor Hawks".into(),
            category: EventCategory::Sports,
            description: "Conference final, game 1.".into(),
            tiers: vec![
                reserved("Lower bowl", 8900, pick(&arena_sections, &lower)),
                reserved("Upper level", 3900, pick(&arena_sections, &upper)),
            ],
            ..event(arena.id, organizer_id, evening(10), 3, on_sale_since)
        },
        NewEvent {
            title: "Hamlet".into(),
            performer: "Lyric Repertory Company".into(),
            category: EventCategory::Theatre,
            description: "Shakespeare's tragedy in a new staging, three hours with one interval.".into(),
            tiers: vec![
                reserved("Orchestra", 12000, pick(&theatre_sections, &["Orchestra"])),
                reserved("Mezzanine", 8500, pick(&theatre_sections, &["Mezzanine"])),
                reserved("Balcony", 4500, pick(&theatre_sections, &["Balcony"])),
            ],
            ..event(theatre.id, organizer_id, evening(14), 3, on_sale_since)
        },
        NewEvent {
            title: "The Wonder Circus".into(),
            performer: "Cirque Lumière".into(),
            category: EventCategory::Family,
            description: "Acrobats, clowns and a flying trapeze for all ages.".into(),
            tiers: vec![
                reserved("Family orchestra", 5500, pick(&theatre_sections, &["Orchestra"])),
                reserved("Family circle", 3500, pick(&theatre_sections, &["Mezzanine", "Balcony"])),
            ],
            ..event(theatre.id, organizer_id, evening(30) - Duration::hours(5), 2, on_sale_since)
        },
        NewEvent {
            title: "Late Night Laughs".into(),
            performer: "Rory Quinn & friends".into(),
            category: EventCategory::Comedy,
            description: "Stand-up in the basement of the Blue Door. 18+.".into(),
            tiers: vec![general("General admission", 2500, 450, pick(&club_sections, &["Main room"]))],
            ..event(club.id, organizer_id, evening(7) + Duration::hours(2), 2, on_sale_since)
        },
        NewEvent {
            title: "Riverside Summer Sound".into(),
            performer: "Various artists".into(),
            category: EventCategory::Festival,
            description: "A day of live music on three stages by the river.".into(),
            tiers: vec![
                general("Day pass", 6500, 8000, pick(&park_sections, &["Festival grounds"])),
                general("VIP terrace", 15900, 600, pick(&park_sections, &["VIP terrace"])),
            ],
            ..event(park.id, organizer_id, evening(45) - Duration::hours(7), 11, on_sale_since)
        },
    ];
    for new_event in events {
        let draft = create_event(db, new_event, now).await?;
        publish_event(db, draft, now).await?;
    }
    Ok(())
}

/// Creates the demo accounts and returns the organizer's id.
async fn seed_accounts(db: &impl ConnectionTrait, now: DateTime<Utc>) -> anyhow::Result<Uuid> {
    let organizer_id = Uuid::now_v7();
    for (email, password, name, role) in DEMO_ACCOUNTS {
        let id = if role == Role::Organizer {
            organizer_id
        } else {
            Uuid::now_v7()
        };
        user::ActiveModel {
            id: Set(id),
            email: Set(email.to_owned()),
            password_hash: Set(hash_password(password).await?),
            name: Set(name.to_owned()),
            role: Set(role),
            organizer_id: Set((role == Role::Staff).then_some(organizer_id)),
            avatar_path: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(db)
        .await?;
    }
    Ok(organizer_id)
}

fn event(
    venue_id: Uuid,
    organizer_id: Uuid,
    starts_at: DateTime<Utc>,
    hours: i64,
    sale_starts_at: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        venue_id,
        organizer_id,
        title: String::new(),
        performer: String::new(),
        category: EventCategory::Concert,
        description: String::new(),
        starts_at,
        ends_at: starts_at + Duration::hours(hours),
        sale_starts_at,
        waiting_room_required: false,
        admission_rate_per_minute: 1000,
        max_active_shoppers: 5000,
        max_tickets_per_user: 8,
        tiers: Vec::new(),
    }
}

fn reserved(name: &str, price_cents: i64, section_ids: Vec<Uuid>) -> NewTier {
    NewTier {
        name: name.into(),
        kind: TierKind::Reserved,
        price_cents,
        currency: "USD".into(),
        capacity: 0,
        section_ids,
    }
}

fn general(name: &str, price_cents: i64, capacity: i32, section_ids: Vec<Uuid>) -> NewTier {
    NewTier {
        name: name.into(),
        kind: TierKind::GeneralAdmission,
        price_cents,
        currency: "USD".into(),
        capacity,
        section_ids,
    }
}

fn venue(owner_id: Uuid, name: &str, city: &str, address: &str, timezone: &str) -> NewVenue {
    NewVenue {
        owner_id,
        name: name.into(),
        city: city.into(),
        address: address.into(),
        timezone: timezone.into(),
        description: None,
        sections: Vec::new(),
    }
}

fn standing(name: &str, capacity: i32, position: (f64, f64)) -> NewSection {
    NewSection {
        name: name.into(),
        kind: SectionKind::GeneralAdmission,
        standing_capacity: capacity,
        position,
        seats: Vec::new(),
    }
}

fn seated(name: &str, layout: GridLayout) -> NewSection {
    NewSection {
        name: name.into(),
        kind: SectionKind::Reserved,
        standing_capacity: 0,
        position: layout.origin,
        seats: layout.seats(),
    }
}

/// An arena in the round with the stage at the top: a standing floor, ten lower-bowl sections of
/// 20 × 30 and ten upper sections of 25 × 40 wrapping around it (16,000 seats plus 2,000 standing).
fn arena(owner_id: Uuid) -> NewVenue {
    let mut sections = vec![standing("Floor", 2000, (0.0, 0.0))];
    let ring = |prefix: u32, radius: f64, rows: u32, seats_per_row: u32| {
        // The stage takes a 60-degree gap at the top of the drawing (-90 degrees).
        let gap = PI / 3.0;
        let step = (2.0 * PI - gap) / 10.0;
        (0..10u32)
            .map(|i| {
                let angle = -PI / 2.0 + gap / 2.0 + step * (f64::from(i) + 0.5);
                seated(
                    &format!("{}", prefix + i + 1),
                    GridLayout {
                        rows,
                        seats_per_row,
                        origin: (radius * angle.cos(), radius * angle.sin()),
                        facing_degrees: angle.to_degrees(),
                        seat_spacing: 1.0,
                        row_spacing: 1.2,
                    },
                )
            })
            .collect::<Vec<_>>()
    };
    sections.extend(ring(100, 60.0, 20, 30));
    sections.extend(ring(200, 100.0, 25, 40));
    NewVenue {
        description: Some("Indoor arena for concerts and sports.".into()),
        sections,
        ..venue(
            owner_id,
            "Harborview Arena",
            "Seattle",
            "1 Harbor Way",
            "America/Los_Angeles",
        )
    }
}

/// A proscenium theatre: orchestra, mezzanine and balcony facing a stage at the top.
fn theatre(owner_id: Uuid) -> NewVenue {
    let block = |name: &str, rows: u32, seats_per_row: u32, depth: f64| {
        seated(
            name,
            GridLayout {
                rows,
                seats_per_row,
                origin: (0.0, depth),
                facing_degrees: 90.0,
                seat_spacing: 1.0,
                row_spacing: 1.1,
            },
        )
    };
    NewVenue {
        description: Some("Restored 1920s playhouse.".into()),
        sections: vec![
            block("Orchestra", 20, 30, 5.0),
            block("Mezzanine", 10, 28, 30.0),
            block("Balcony", 12, 30, 45.0),
        ],
        ..venue(
            owner_id,
            "Grand Lyric Theatre",
            "Chicago",
            "400 W Randolph St",
            "America/Chicago",
        )
    }
}

fn club(owner_id: Uuid) -> NewVenue {
    NewVenue {
        description: Some("Basement club with a standing room.".into()),
        sections: vec![standing("Main room", 450, (0.0, 0.0))],
        ..venue(
            owner_id,
            "The Blue Door",
            "Austin",
            "712 Red River St",
            "America/Chicago",
        )
    }
}

fn park(owner_id: Uuid) -> NewVenue {
    NewVenue {
        description: Some("Open-air festival site on the river bank.".into()),
        sections: vec![
            standing("Festival grounds", 8000, (0.0, 0.0)),
            standing("VIP terrace", 600, (0.0, -50.0)),
        ],
        ..venue(
            owner_id,
            "Riverside Park",
            "Portland",
            "Waterfront Park",
            "America/Los_Angeles",
        )
    }
}

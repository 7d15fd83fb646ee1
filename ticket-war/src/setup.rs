//! Arranging the battlefield through the API: an organizer's venue and event, and the buyers.

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::Api;
use crate::args::{Args, Mode};

/// What the storm fights over.
pub struct Battlefield {
    pub event_id: String,
    /// The general-admission tier (GA mode).
    pub ga_tier: Option<String>,
    /// Seat ids of the reserved section (seat modes).
    pub seats: Vec<String>,
    pub capacity: u64,
}

/// Most tickets one buyer may own on the event.
pub const PER_BUYER_CAP: u64 = 100;

pub async fn battlefield(api: &Api, args: &Args) -> anyhow::Result<Battlefield> {
    let login = api
        .must(
            None,
            "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
            json!({ "input": { "email": args.organizer_email, "password": args.organizer_password } }),
        )
        .await
        .context("logging in as the organizer (is the server seeded with the demo accounts?)")?;
    let token = login["login"]["accessToken"]
        .as_str()
        .context("no access token")?
        .to_owned();
    let run = Uuid::new_v4().simple().to_string();
    let section = match args.mode {
        Mode::Ga => {
            json!({ "name": "Floor", "kind": "GENERAL_ADMISSION", "standingCapacity": args.tickets })
        }
        Mode::BestAvailable | Mode::HoldSeats => json!({
            "name": "Bowl", "kind": "RESERVED",
            "grid": { "rows": args.rows, "seatsPerRow": args.seats_per_row }
        }),
    };
    let venue = api
        .must(
            Some(&token),
            "mutation($input: CreateVenueInput!) { createVenue(input: $input) { id sections { id } } }",
            json!({ "input": { "name": format!("Ticket War {run}"), "city": "Loopback", "address": "127.0.0.1",
                "sections": [section] } }),
        )
        .await
        .context("creating the venue")?;
    let section_id = venue["createVenue"]["sections"][0]["id"].clone();
    let now = Utc::now();
    let event = api
        .must(
            Some(&token),
            "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
            json!({ "input": {
                "venueId": venue["createVenue"]["id"], "title": format!("Ticket War {run}"),
                "performer": "The Load Generators", "category": "CONCERT",
                "startsAt": (now + Duration::days(30)).to_rfc3339(),
                "endsAt": (now + Duration::days(30) + Duration::hours(3)).to_rfc3339(),
                "saleStartsAt": (now - Duration::minutes(1)).to_rfc3339(),
                "maxTicketsPerUser": PER_BUYER_CAP,
            } }),
        )
        .await
        .context("creating the event")?;
    let event_id = event["createEvent"]["id"]
        .as_str()
        .context("no event id")?
        .to_owned();
    let tier = match args.mode {
        Mode::Ga => json!({ "name": "Floor", "kind": "GENERAL_ADMISSION", "priceCents": 4500,
            "capacity": args.tickets, "sectionIds": [section_id] }),
        Mode::BestAvailable | Mode::HoldSeats => json!({ "name": "Bowl", "kind": "RESERVED",
            "priceCents": 8900, "sectionIds": [section_id] }),
    };
    let tier = api
        .must(
            Some(&token),
            "mutation($e: ID!, $input: TicketTierInput!) { createTicketTier(eventId: $e, input: $input) { id } }",
            json!({ "e": event_id, "input": tier }),
        )
        .await
        .context("creating the tier")?;
    api.must(
        Some(&token),
        "mutation($e: ID!) { publishEvent(id: $e) { id } }",
        json!({ "e": event_id }),
    )
    .await
    .context("publishing the event")?;

    let (ga_tier, seats, capacity) = match args.mode {
        Mode::Ga => (
            tier["createTicketTier"]["id"].as_str().map(str::to_owned),
            Vec::new(),
            args.tickets,
        ),
        Mode::BestAvailable | Mode::HoldSeats => {
            let seats = seat_ids(api, &event_id).await?;
            let capacity = seats.len() as u64;
            (None, seats, capacity)
        }
    };
    Ok(Battlefield {
        event_id,
        ga_tier,
        seats,
        capacity,
    })
}

async fn seat_ids(api: &Api, event_id: &str) -> anyhow::Result<Vec<String>> {
    let map = api
        .must(
            None,
            "query($e: ID!) { seatMap(eventId: $e) { sections { seats { id } } } }",
            json!({ "e": event_id }),
        )
        .await
        .context("reading the seat map")?;
    Ok(map["seatMap"]["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["seats"].as_array().cloned().unwrap_or_default())
        .filter_map(|seat| seat["id"].as_str().map(str::to_owned))
        .collect())
}

/// A registered buyer's session.
pub struct Buyer {
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
}

const SESSION: &str = "accessToken accessTokenExpiresAt refreshToken";

impl Buyer {
    fn from_session(session: &Value) -> anyhow::Result<Self> {
        let text = |field: &str| {
            session[field]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("no {field} in the session"))
        };
        Ok(Self {
            access_token: text("accessToken")?,
            access_expires_at: text("accessTokenExpiresAt")?
                .parse()
                .context("accessTokenExpiresAt is not a date")?,
            refresh_token: text("refreshToken")?,
        })
    }
}

/// Registers `count` buyers (a few at a time: each costs the server a password hash).
pub async fn buyers(api: &Api, count: usize) -> anyhow::Result<Vec<Buyer>> {
    let run = Uuid::new_v4().simple().to_string();
    let registrations = futures::stream::iter(0..count)
        .map(|i| {
            let email = format!("buyer-{i}-{run}@ticket-war.test");
            async move {
                let data = api
                    .must(
                        None,
                        &format!("mutation($input: RegisterInput!) {{ register(input: $input) {{ {SESSION} }} }}"),
                        json!({ "input": { "email": email, "password": "ticket-war-buyer", "name": format!("Buyer {i}") } }),
                    )
                    .await?;
                Buyer::from_session(&data["register"])
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<anyhow::Result<Buyer>>>()
        .await;
    registrations
        .into_iter()
        .collect::<anyhow::Result<Vec<Buyer>>>()
        .context("registering buyers")
}

/// Trades the refresh token of every buyer whose access token expires before `until` for a new
/// session (no password hash, unlike a sign-in); returns how many were renewed.
pub async fn renew_expiring(
    api: &Api,
    buyers: &mut [Buyer],
    until: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let renewals = futures::stream::iter(
        buyers
            .iter_mut()
            .filter(|buyer| buyer.access_expires_at < until),
    )
    .map(|buyer| async move {
        let data = api
            .must(
                None,
                &format!(
                    "mutation($r: String!) {{ refreshToken(refreshToken: $r) {{ {SESSION} }} }}"
                ),
                json!({ "r": buyer.refresh_token }),
            )
            .await?;
        *buyer = Buyer::from_session(&data["refreshToken"])?;
        anyhow::Ok(())
    })
    .buffer_unordered(16)
    .collect::<Vec<anyhow::Result<()>>>()
    .await;
    let renewed = renewals.len();
    renewals
        .into_iter()
        .collect::<anyhow::Result<()>>()
        .context("renewing buyers' access tokens")?;
    Ok(renewed)
}

use async_graphql::{
    Context, Enum, ID, InputObject, Object, Result, ResultExt, SimpleObject, Subscription,
};
use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::auth::Viewer;
use crate::auth::guards::RoleGuard;
use crate::error::{AppError, AppResult};
use crate::gql::{ContextExt, parse_id};
use crate::live::LiveMessage;
use crate::orders::graphql::Ticket;
use crate::state::AppState;
use crate::tickets::service::{self, Inspection, Scan, Verdict};
use crate::tickets::signing;

/// What a scanned code is worth at this door.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::tickets::service::Verdict")]
pub enum TicketVerdict {
    /// Genuine, valid, not yet admitted (from `verifyTicket`, which admits nobody).
    Valid,
    /// Admitted by this scan.
    Admitted,
    /// Admitted before: see `checkedInAt` and `gate`.
    AlreadyCheckedIn,
    /// Cancelled, reduced away or refunded: never admits.
    Cancelled,
    /// A genuine ticket for another event.
    WrongEvent,
    /// Not a genuine ticket: bad signature, garbled, or replaced by a reissue.
    Invalid,
}

/// The outcome of one scan.
#[derive(SimpleObject)]
pub struct TicketCheck {
    pub verdict: TicketVerdict,
    /// The ticket, when the code named a real one.
    pub ticket: Option<Ticket>,
    /// When and where it was admitted, for ADMITTED and ALREADY_CHECKED_IN.
    pub checked_in_at: Option<DateTime<Utc>>,
    pub gate: Option<String>,
    /// Why, for INVALID.
    pub reason: Option<String>,
}

impl From<Inspection> for TicketCheck {
    fn from(inspection: Inspection) -> Self {
        Self {
            verdict: inspection.verdict.into(),
            checked_in_at: inspection.ticket.as_ref().and_then(|t| t.checked_in_at),
            gate: inspection
                .ticket
                .as_ref()
                .and_then(|t| t.checked_in_gate.clone()),
            ticket: inspection.ticket.map(Ticket::from),
            reason: inspection.reason,
        }
    }
}

/// One scan of an offline batch, in the order given.
#[derive(SimpleObject)]
pub struct BatchScanResult {
    /// Position of the scan in the input list.
    pub index: i32,
    pub check: TicketCheck,
    /// The ticket was admitted at another gate: the same code presented twice.
    pub conflict: bool,
}

/// A scan a scanner recorded while offline.
#[derive(InputObject)]
pub struct OfflineScanInput {
    pub payload: String,
    pub gate: String,
    /// When the scan happened (the scanner's clock).
    pub scanned_at: DateTime<Utc>,
}

/// The public key a scanner verifies this event's ticket codes with, offline.
#[derive(SimpleObject)]
pub struct VerificationKey {
    pub event_id: ID,
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, base64url without padding.
    pub public_key: String,
    /// How payloads are built: `ST1.<base64url(ticketId ‖ eventId ‖ nonce)>.<base64url(signature)>`,
    /// the signature covering `ST1.<body>`.
    pub payload_format: String,
}

/// Admissions so far against tickets sold.
#[derive(SimpleObject, Clone, PartialEq)]
pub struct CheckInStats {
    pub event_id: ID,
    /// Valid tickets.
    pub sold: i64,
    /// Valid tickets checked in.
    pub admitted: i64,
    pub gates: Vec<GateCount>,
}

#[derive(SimpleObject, Clone, PartialEq)]
pub struct GateCount {
    pub gate: String,
    pub admitted: i64,
}

async fn load_stats(state: &AppState, event_id: Uuid) -> AppResult<CheckInStats> {
    let stats = service::stats(&state.db, event_id).await?;
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    Ok(CheckInStats {
        event_id: ID(event_id.to_string()),
        sold: count(stats.sold),
        admitted: count(stats.admitted),
        gates: stats
            .per_gate
            .into_iter()
            .map(|(gate, admitted)| GateCount {
                gate,
                admitted: count(admitted),
            })
            .collect(),
    })
}

fn check_gate(gate: &str) -> AppResult<String> {
    let gate = gate.trim();
    if gate.is_empty() || gate.chars().count() > 50 {
        return Err(AppError::bad_input("gate must be 1 to 50 characters"));
    }
    Ok(gate.to_owned())
}

/// The caller's state, identity and event, once they may work this event's door.
async fn at_door<'c>(
    ctx: &'c Context<'_>,
    event_id: &ID,
) -> Result<(&'c AppState, &'c Viewer, Uuid)> {
    let state = ctx.state().extend()?;
    let viewer = ctx.viewer().extend()?;
    let event_id = parse_id(event_id, "eventId").extend()?;
    service::door_of(&state.db, viewer, event_id)
        .await
        .extend()?;
    Ok((state, viewer, event_id))
}

/// Most scans in one offline batch.
const MAX_BATCH: usize = 500;

#[derive(Default)]
pub struct TicketQuery;

#[Object]
impl TicketQuery {
    /// One of your tickets (with its QR code).
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> Result<Ticket> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&id, "id").extend()?;
        Ok(service::own_ticket(&state.db, viewer, id)
            .await
            .extend()?
            .into())
    }

    /// The public key scanners verify this event's tickets with (its organizer and their staff).
    #[graphql(guard = "RoleGuard::STAFF_OR_ORGANIZER")]
    async fn event_verification_key(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
    ) -> Result<VerificationKey> {
        let (state, _, event_id) = at_door(ctx, &event_id).await?;
        Ok(VerificationKey {
            event_id: ID(event_id.to_string()),
            algorithm: "Ed25519".into(),
            public_key: signing::encode_key(&state.signer.verifying_key(event_id)),
            payload_format: "ST1.<body>.<signature>".into(),
        })
    }

    /// Admitted against sold, overall and per gate.
    #[graphql(guard = "RoleGuard::STAFF_OR_ORGANIZER")]
    async fn check_in_stats(&self, ctx: &Context<'_>, event_id: ID) -> Result<CheckInStats> {
        let (state, _, event_id) = at_door(ctx, &event_id).await?;
        load_stats(state, event_id).await.extend()
    }
}

#[derive(Default)]
pub struct TicketMutation;

#[Object]
impl TicketMutation {
    /// What a scanned code is worth at this event's door, admitting nobody.
    #[graphql(guard = "RoleGuard::STAFF_OR_ORGANIZER")]
    async fn verify_ticket(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
        payload: String,
    ) -> Result<TicketCheck> {
        let (state, _, event_id) = at_door(ctx, &event_id).await?;
        let (inspection, _) = service::inspect(&state.db, &state.signer, event_id, &payload)
            .await
            .extend()?;
        Ok(inspection.into())
    }

    /// Admits a ticket exactly once: of two simultaneous scans one is ADMITTED, the other
    /// ALREADY_CHECKED_IN. Cancelled, reissued and foreign codes never admit.
    #[graphql(guard = "RoleGuard::STAFF_OR_ORGANIZER")]
    async fn check_in_ticket(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
        payload: String,
        gate: String,
    ) -> Result<TicketCheck> {
        let gate = check_gate(&gate).extend()?;
        let (state, viewer, event_id) = at_door(ctx, &event_id).await?;
        let inspection = service::check_in(
            &state.db,
            &state.signer,
            viewer,
            event_id,
            &payload,
            &gate,
            Utc::now(),
        )
        .await
        .extend()?;
        if inspection.verdict == Verdict::Admitted {
            announce(state, event_id).await;
        }
        Ok(inspection.into())
    }

    /// Applies scans recorded offline, in scan-time order, each admitted at its scan time. A code
    /// presented twice is admitted once; the other scan is reported (a conflict when at another gate)
    /// and the rest of the batch still applies.
    #[graphql(guard = "RoleGuard::STAFF_OR_ORGANIZER")]
    async fn check_in_batch(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
        scans: Vec<OfflineScanInput>,
    ) -> Result<Vec<BatchScanResult>> {
        if scans.len() > MAX_BATCH {
            return Err(AppError::bad_input(format!(
                "send at most {MAX_BATCH} scans per batch"
            )))
            .extend();
        }
        let scans = scans
            .into_iter()
            .map(|scan| {
                Ok(Scan {
                    gate: check_gate(&scan.gate)?,
                    payload: scan.payload,
                    scanned_at: scan.scanned_at,
                })
            })
            .collect::<AppResult<Vec<Scan>>>()
            .extend()?;
        let (state, viewer, event_id) = at_door(ctx, &event_id).await?;
        let results = service::check_in_batch(&state.db, &state.signer, viewer, event_id, &scans)
            .await
            .extend()?;
        if results.iter().any(|r| r.verdict == Verdict::Admitted) {
            announce(state, event_id).await;
        }
        Ok(results
            .into_iter()
            .zip(&scans)
            .enumerate()
            .map(|(index, (inspection, scan))| {
                let conflict = inspection.verdict == Verdict::AlreadyCheckedIn
                    && inspection
                        .ticket
                        .as_ref()
                        .and_then(|t| t.checked_in_gate.as_deref())
                        .is_some_and(|gate| gate != scan.gate);
                BatchScanResult {
                    index: i32::try_from(index).unwrap_or(i32::MAX),
                    check: inspection.into(),
                    conflict,
                }
            })
            .collect())
    }

    /// Takes back a check-in made by mistake; CONFLICT if the ticket is not checked in.
    #[graphql(guard = "RoleGuard::STAFF_OR_ORGANIZER")]
    async fn undo_check_in(&self, ctx: &Context<'_>, ticket_id: ID) -> Result<Ticket> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let ticket_id = parse_id(&ticket_id, "ticketId").extend()?;
        let ticket = service::undo_check_in(&state.db, viewer, ticket_id)
            .await
            .extend()?;
        announce(state, ticket.event_id).await;
        Ok(ticket.into())
    }
}

async fn announce(state: &AppState, event_id: Uuid) {
    state
        .bus
        .publish(LiveMessage::CheckInsChanged { event_id })
        .await;
}

#[derive(Default)]
pub struct TicketSubscription;

#[Subscription]
impl TicketSubscription {
    /// Check-in figures for a door dashboard: now, then after every admission or undo.
    #[graphql(guard = "RoleGuard::STAFF_OR_ORGANIZER")]
    async fn check_ins_changed(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
    ) -> Result<impl Stream<Item = CheckInStats> + use<>> {
        let (state, _, event_id) = at_door(ctx, &event_id).await?;
        let state = state.clone();
        let mut messages = state.bus.subscribe();
        let first = load_stats(&state, event_id).await.extend()?;
        Ok(async_stream::stream! {
            let mut last = first.clone();
            yield first;
            loop {
                match messages.recv().await {
                    Ok(LiveMessage::CheckInsChanged { event_id: changed }) if changed == event_id => {}
                    Ok(LiveMessage::Resync) | Err(RecvError::Lagged(_)) => {}
                    Ok(_) => continue,
                    Err(RecvError::Closed) => break,
                }
                match load_stats(&state, event_id).await {
                    Ok(stats) if stats != last => {
                        last = stats.clone();
                        yield stats;
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "could not read check-in figures"),
                }
            }
        })
    }
}

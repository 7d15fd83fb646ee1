//! Door operations: verifying a ticket payload, admitting it exactly once, undoing a mistaken scan,
//! applying scans recorded offline, and the counts a door dashboard shows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::enums::{Role, TicketStatus};
use entity::prelude::*;
use entity::{event, ticket};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use crate::tickets::signing::{self, TicketClaims, TicketSigner};

/// The answer at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Genuine, valid and not yet admitted (verification only).
    Valid,
    /// Admitted by this scan.
    Admitted,
    AlreadyCheckedIn,
    Cancelled,
    WrongEvent,
    Invalid,
}

/// A verdict with the ticket it is about, when the payload named a real one.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub verdict: Verdict,
    pub ticket: Option<ticket::Model>,
    /// Why, for INVALID.
    pub reason: Option<String>,
}

impl Inspection {
    fn invalid(reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Invalid,
            ticket: None,
            reason: Some(reason.into()),
        }
    }

    fn of(verdict: Verdict, ticket: ticket::Model) -> Self {
        Self {
            verdict,
            ticket: Some(ticket),
            reason: None,
        }
    }
}

/// The event at whose door `viewer` may scan: its organizer, staff working for that organizer, or an
/// admin. Anyone else is FORBIDDEN.
pub async fn door_of(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    event_id: Uuid,
) -> AppResult<event::Model> {
    let event = Event::find_by_id(event_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("event"))?;
    let allowed = match viewer.role {
        Role::Admin => true,
        Role::Organizer => event.organizer_id == viewer.user_id,
        Role::Staff => {
            User::find_by_id(viewer.user_id)
                .one(db)
                .await?
                .and_then(|staff| staff.organizer_id)
                == Some(event.organizer_id)
        }
        Role::Customer => false,
    };
    if !allowed {
        return Err(AppError::Forbidden(
            "only this event's organizer and their staff work its doors".into(),
        ));
    }
    Ok(event)
}

/// What a payload is worth at `event_id`'s door, changing nothing.
pub async fn inspect(
    db: &impl ConnectionTrait,
    signer: &TicketSigner,
    event_id: Uuid,
    payload: &str,
) -> AppResult<(Inspection, Option<TicketClaims>)> {
    let claims = match signing::read_claims(payload)
        .and_then(|claims| signing::verify(&signer.verifying_key(claims.event_id), payload))
    {
        Ok(claims) => claims,
        Err(forgery) => return Ok((Inspection::invalid(forgery.to_string()), None)),
    };
    let Some(ticket) = Ticket::find_by_id(claims.ticket_id).one(db).await? else {
        return Ok((Inspection::invalid("no such ticket"), None));
    };
    let verdict = if claims.event_id != event_id || ticket.event_id != event_id {
        Verdict::WrongEvent
    } else if ticket.nonce != claims.nonce {
        return Ok((
            Inspection::invalid("this code was replaced by a reissued ticket"),
            None,
        ));
    } else if ticket.status != TicketStatus::Valid {
        Verdict::Cancelled
    } else if ticket.checked_in_at.is_some() {
        Verdict::AlreadyCheckedIn
    } else {
        Verdict::Valid
    };
    Ok((Inspection::of(verdict, ticket), Some(claims)))
}

/// Admits a ticket once. The admission is one conditional UPDATE (valid, same nonce, not yet checked
/// in), so of two scanners scanning the same ticket at the same moment exactly one admits it and the
/// other hears ALREADY_CHECKED_IN.
pub async fn check_in(
    db: &DatabaseConnection,
    signer: &TicketSigner,
    staff: &Viewer,
    event_id: Uuid,
    payload: &str,
    gate: &str,
    at: DateTime<Utc>,
) -> AppResult<Inspection> {
    let (inspection, claims) = inspect(db, signer, event_id, payload).await?;
    let (Verdict::Valid, Some(claims)) = (inspection.verdict, claims) else {
        return Ok(inspection);
    };
    let admitted = Ticket::update_many()
        .col_expr(ticket::Column::CheckedInAt, Expr::value(at))
        .col_expr(ticket::Column::CheckedInGate, Expr::value(gate))
        .col_expr(ticket::Column::CheckedInBy, Expr::value(staff.user_id))
        .filter(ticket::Column::Id.eq(claims.ticket_id))
        .filter(ticket::Column::Status.eq(TicketStatus::Valid))
        .filter(ticket::Column::Nonce.eq(claims.nonce.as_str()))
        .filter(ticket::Column::CheckedInAt.is_null())
        .exec(db)
        .await?
        .rows_affected
        == 1;
    let (after, _) = inspect(db, signer, event_id, payload).await?;
    Ok(match (admitted, after.ticket) {
        (true, Some(ticket)) => Inspection::of(Verdict::Admitted, ticket),
        // Someone else's scan or a cancellation won the race: say what it is now.
        (_, ticket) => Inspection { ticket, ..after },
    })
}

/// Checks a checked-in ticket back out, for a scan made by mistake.
pub async fn undo_check_in(
    db: &DatabaseConnection,
    viewer: &Viewer,
    ticket_id: Uuid,
) -> AppResult<ticket::Model> {
    let ticket = Ticket::find_by_id(ticket_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("ticket"))?;
    door_of(db, viewer, ticket.event_id).await?;
    let undone = Ticket::update_many()
        .col_expr(
            ticket::Column::CheckedInAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            ticket::Column::CheckedInGate,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            ticket::Column::CheckedInBy,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(ticket::Column::Id.eq(ticket_id))
        .filter(ticket::Column::CheckedInAt.is_not_null())
        .exec(db)
        .await?;
    if undone.rows_affected == 0 {
        return Err(AppError::Conflict("the ticket is not checked in".into()));
    }
    Ticket::find_by_id(ticket_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("ticket"))
}

/// One scan recorded by a scanner while offline.
#[derive(Debug, Clone)]
pub struct Scan {
    pub payload: String,
    pub gate: String,
    pub scanned_at: DateTime<Utc>,
}

/// Applies offline scans in the order they were made (by `scanned_at`), each admitted at its scan
/// time. A ticket scanned twice is admitted by the earlier scan; the later one comes back
/// ALREADY_CHECKED_IN, a conflict when it was at another gate. Results are in input order.
pub async fn check_in_batch(
    db: &DatabaseConnection,
    signer: &TicketSigner,
    staff: &Viewer,
    event_id: Uuid,
    scans: &[Scan],
) -> AppResult<Vec<Inspection>> {
    let mut order: Vec<usize> = (0..scans.len()).collect();
    order.sort_by_key(|&i| (scans[i].scanned_at, i));
    let mut results: Vec<Option<Inspection>> = vec![None; scans.len()];
    for i in order {
        let scan = &scans[i];
        results[i] = Some(
            check_in(
                db,
                signer,
                staff,
                event_id,
                &scan.payload,
                &scan.gate,
                scan.scanned_at,
            )
            .await?,
        );
    }
    Ok(results.into_iter().flatten().collect())
}

/// Admissions against tickets sold, and per gate.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckInStats {
    pub sold: u64,
    pub admitted: u64,
    pub per_gate: BTreeMap<String, u64>,
}

pub async fn stats(db: &impl ConnectionTrait, event_id: Uuid) -> AppResult<CheckInStats> {
    let valid = || {
        Ticket::find()
            .filter(ticket::Column::EventId.eq(event_id))
            .filter(ticket::Column::Status.eq(TicketStatus::Valid))
    };
    let gates: Vec<(Option<String>, i64)> = valid()
        .filter(ticket::Column::CheckedInAt.is_not_null())
        .select_only()
        .column(ticket::Column::CheckedInGate)
        .column_as(ticket::Column::Id.count(), "admitted")
        .group_by(ticket::Column::CheckedInGate)
        .into_tuple()
        .all(db)
        .await?;
    let per_gate: BTreeMap<String, u64> = gates
        .into_iter()
        .map(|(gate, n)| (gate.unwrap_or_default(), u64::try_from(n).unwrap_or(0)))
        .collect();
    Ok(CheckInStats {
        sold: valid().count(db).await?,
        admitted: per_gate.values().sum(),
        per_gate,
    })
}

/// A ticket the viewer may see: one of an order they may see (their own, or any for an admin).
pub async fn own_ticket(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    ticket_id: Uuid,
) -> AppResult<ticket::Model> {
    let ticket = Ticket::find_by_id(ticket_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("ticket"))?;
    match crate::orders::service::find_order(db, viewer, ticket.order_id).await {
        Ok(_) => Ok(ticket),
        Err(AppError::NotFound(_)) => Err(AppError::NotFound("ticket")),
        Err(err) => Err(err),
    }
}

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use entity::enums::{EventStatus, OrderStatus, SeatStatus, TicketStatus};
use entity::prelude::*;
use entity::{event, event_seat, order, order_line, ticket};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::booking::service::{adjust_tiers, free_seats, new_ticket_nonce};
use crate::db::is_postgres;
use crate::error::{AppError, AppResult};
use crate::events::changelog;
use crate::gql::Cursor;
use crate::payments::PaymentProvider;
use crate::payments::service::{pay_out_claimed_refund, refund_orders};
use crate::waitlist::promotion::offer_freed_stock;

/// How long a cancelled order can be restored.
pub const UNDO_WINDOW_MINUTES: i64 = 5;

/// Which orders `myOrders` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderFilter {
    /// Paid orders for events that have not ended.
    Upcoming,
    /// Paid orders for events that have ended.
    Past,
    Cancelled,
}

/// An order the viewer may see: their own, or any for an admin. Others are NOT_FOUND.
pub async fn find_order(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<order::Model> {
    let order = Order::find_by_id(id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    if order.user_id != viewer.user_id && !viewer.is_admin() {
        return Err(AppError::NotFound("order"));
    }
    Ok(order)
}

/// The viewer's orders, newest first.
pub async fn list_orders(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    filter: Option<OrderFilter>,
    after: Option<&Cursor>,
    limit: usize,
    now: DateTime<Utc>,
) -> AppResult<Vec<order::Model>> {
    let mut query = Order::find()
        .filter(order::Column::UserId.eq(user_id))
        .order_by_desc(order::Column::CreatedAt)
        .order_by_desc(order::Column::Id)
        .limit(limit as u64);
    match filter {
        Some(OrderFilter::Cancelled) => {
            query = query.filter(order::Column::Status.eq(OrderStatus::Cancelled))
        }
        Some(kind @ (OrderFilter::Upcoming | OrderFilter::Past)) => {
            let ends = if kind == OrderFilter::Upcoming {
                Expr::col(event::Column::EndsAt).gt(now)
            } else {
                Expr::col(event::Column::EndsAt).lte(now)
            };
            query = query
                .filter(order::Column::Status.eq(OrderStatus::Paid))
                .filter(
                    order::Column::EventId.in_subquery(
                        sea_orm::sea_query::Query::select()
                            .column(event::Column::Id)
                            .from(Event)
                            .and_where(ends)
                            .to_owned(),
                    ),
                );
        }
        None => {}
    }
    if let Some(cursor) = after {
        let created_at = DateTime::parse_from_rfc3339(&cursor.key)
            .map_err(|_| AppError::bad_input("after is not a valid cursor"))?
            .with_timezone(&Utc);
        query = query.filter(
            Condition::any()
                .add(order::Column::CreatedAt.lt(created_at))
                .add(
                    Condition::all()
                        .add(order::Column::CreatedAt.eq(created_at))
                        .add(order::Column::Id.lt(cursor.id)),
                ),
        );
    }
    Ok(query.all(db).await?)
}

pub fn order_cursor(order: &order::Model) -> Cursor {
    Cursor::new(order.created_at.to_rfc3339(), order.id)
}

/// Locks an order the viewer may change (PostgreSQL row lock; SQLite serialises writers).
async fn lock_order(
    txn: &DatabaseTransaction,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<order::Model> {
    let mut query = Order::find_by_id(id);
    if is_postgres(txn) {
        query = query.lock_exclusive();
    }
    let order = query.one(txn).await?.ok_or(AppError::NotFound("order"))?;
    if order.user_id != viewer.user_id && !viewer.is_admin() {
        return Err(AppError::NotFound("order"));
    }
    Ok(order)
}

async fn event_of(txn: &DatabaseTransaction, order: &order::Model) -> AppResult<event::Model> {
    Event::find_by_id(order.event_id)
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("event"))
}

/// Cancels `tickets` (valid tickets of one order) and returns their stock, in the caller's transaction;
/// the stock goes to the event's waitlist first.
async fn cancel_tickets(
    txn: &DatabaseTransaction,
    tickets: &[ticket::Model],
    claim_window: Duration,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let Some(first) = tickets.first() else {
        return Ok(());
    };
    let ids: Vec<Uuid> = tickets.iter().map(|t| t.id).collect();
    Ticket::update_many()
        .col_expr(
            ticket::Column::Status,
            Expr::value(TicketStatus::Cancelled.as_str()),
        )
        .col_expr(ticket::Column::CancelledAt, Expr::value(now))
        .filter(ticket::Column::Id.is_in(ids))
        .exec(txn)
        .await?;
    let mut seat_ids: Vec<Uuid> = tickets.iter().filter_map(|t| t.seat_id).collect();
    seat_ids.sort();
    if !seat_ids.is_empty() {
        free_seats(
            txn,
            Condition::all()
                .add(event_seat::Column::EventId.eq(first.event_id))
                .add(event_seat::Column::SeatId.is_in(seat_ids.iter().copied()))
                .add(event_seat::Column::OrderId.eq(first.order_id)),
            now,
        )
        .await?;
    }
    let mut per_tier: BTreeMap<Uuid, i32> = BTreeMap::new();
    for ticket in tickets {
        *per_tier.entry(ticket.tier_id).or_default() += 1;
    }
    adjust_tiers(txn, &per_tier, 1, now).await?;
    let tiers: BTreeSet<Uuid> = per_tier.keys().copied().collect();
    let promotion =
        offer_freed_stock(txn, first.event_id, &tiers, &seat_ids, claim_window, now).await?;
    let changed: Vec<(Uuid, SeatStatus, Uuid)> = tickets
        .iter()
        .filter_map(|t| {
            t.seat_id
                .map(|seat| (seat, promotion.status_of_freed(seat), t.tier_id))
        })
        .collect();
    changelog::record(txn, first.event_id, &changed, now).await?;
    Ok(())
}

fn ensure_cancellable(
    order: &order::Model,
    event: &event::Model,
    tickets: &[ticket::Model],
    now: DateTime<Utc>,
) -> AppResult<()> {
    if order.status != OrderStatus::Paid {
        return Err(AppError::Conflict("the order is already cancelled".into()));
    }
    if event.starts_at <= now {
        return Err(AppError::Conflict(
            "the event has started; orders can no longer be cancelled".into(),
        ));
    }
    if tickets.iter().any(|t| t.checked_in_at.is_some()) {
        return Err(AppError::Conflict(
            "a checked-in ticket cannot be cancelled".into(),
        ));
    }
    Ok(())
}

/// Cancels a whole order. Undoable for a few minutes; refunded when that window closes.
pub async fn cancel_order(
    db: &DatabaseConnection,
    claim_window: Duration,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<order::Model> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let order = lock_order(&txn, viewer, id).await?;
    let event = event_of(&txn, &order).await?;
    let tickets = valid_tickets(&txn, order.id).await?;
    ensure_cancellable(&order, &event, &tickets, now)?;
    cancel_tickets(&txn, &tickets, claim_window, now).await?;
    let cancelled = set_status(&txn, order, OrderStatus::Cancelled, Some(now), now).await?;
    txn.commit().await?;
    Ok(cancelled)
}

async fn valid_tickets(db: &impl ConnectionTrait, order_id: Uuid) -> AppResult<Vec<ticket::Model>> {
    Ok(Ticket::find()
        .filter(ticket::Column::OrderId.eq(order_id))
        .filter(ticket::Column::Status.eq(TicketStatus::Valid))
        .order_by_asc(ticket::Column::Id)
        .all(db)
        .await?)
}

/// Cancels some tickets of an order and refunds them at once. Cancelling every remaining ticket is a
/// full cancellation (undoable, refunded later).
pub async fn reduce_order(
    db: &DatabaseConnection,
    payments: &dyn PaymentProvider,
    claim_window: Duration,
    viewer: &Viewer,
    id: Uuid,
    ticket_ids: &[Uuid],
) -> AppResult<order::Model> {
    if ticket_ids.is_empty() {
        return Err(AppError::bad_input("name at least one ticket to cancel"));
    }
    let now = Utc::now();
    let txn = db.begin().await?;
    let order = lock_order(&txn, viewer, id).await?;
    let event = event_of(&txn, &order).await?;
    let valid = valid_tickets(&txn, order.id).await?;
    let chosen: Vec<ticket::Model> = valid
        .iter()
        .filter(|t| ticket_ids.contains(&t.id))
        .cloned()
        .collect();
    let mut wanted = ticket_ids.to_vec();
    wanted.sort();
    wanted.dedup();
    if chosen.len() != wanted.len() {
        return Err(AppError::bad_input(
            "ticketIds must be valid tickets of this order",
        ));
    }
    // Only the tickets being cancelled matter: others of the order may already be through the door.
    ensure_cancellable(&order, &event, &chosen, now)?;
    if chosen.len() == valid.len() {
        txn.rollback().await?;
        return cancel_order(db, claim_window, viewer, id).await;
    }
    let prices: HashMap<Uuid, i64> = OrderLine::find()
        .filter(order_line::Column::OrderId.eq(order.id))
        .all(&txn)
        .await?
        .into_iter()
        .map(|line| (line.id, line.unit_price_cents))
        .collect();
    let refund: i64 = chosen
        .iter()
        .map(|t| prices.get(&t.order_line_id).copied().unwrap_or(0))
        .sum();
    cancel_tickets(&txn, &chosen, claim_window, now).await?;
    // The refund is claimed in the same transaction as the reduction, so it is paid exactly once.
    Order::update_many()
        .col_expr(
            order::Column::RefundedCents,
            Expr::col(order::Column::RefundedCents).add(refund),
        )
        .col_expr(order::Column::UpdatedAt, Expr::value(now))
        .filter(order::Column::Id.eq(order.id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    if refund > 0 {
        pay_out_claimed_refund(db, payments, &order, refund).await?;
    }
    Order::find_by_id(order.id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("order"))
}

/// Restores an order cancelled less than [`UNDO_WINDOW_MINUTES`] ago, if all its seats (or GA stock)
/// are still free. The restored tickets get new nonces, so QR codes issued before stay void.
pub async fn undo_cancellation(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<order::Model> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let order = lock_order(&txn, viewer, id).await?;
    let Some(cancelled_at) = order
        .cancelled_at
        .filter(|_| order.status == OrderStatus::Cancelled)
    else {
        return Err(AppError::Conflict("the order is not cancelled".into()));
    };
    if now - cancelled_at > Duration::minutes(UNDO_WINDOW_MINUTES) {
        return Err(AppError::Conflict(format!(
            "a cancellation can be undone for {UNDO_WINDOW_MINUTES} minutes only"
        )));
    }
    let event = event_of(&txn, &order).await?;
    if event.status != EventStatus::OnSale {
        return Err(AppError::Conflict("the event was cancelled".into()));
    }
    if order.refunded_cents >= order.total_cents {
        return Err(AppError::Conflict("the order was already refunded".into()));
    }
    let tickets: Vec<ticket::Model> = Ticket::find()
        .filter(ticket::Column::OrderId.eq(order.id))
        .filter(ticket::Column::Status.eq(TicketStatus::Cancelled))
        .all(&txn)
        .await?
        .into_iter()
        .filter(|t| t.cancelled_at == Some(cancelled_at))
        .collect();

    let mut seat_ids: Vec<Uuid> = tickets.iter().filter_map(|t| t.seat_id).collect();
    seat_ids.sort();
    if !seat_ids.is_empty() {
        let retaken = EventSeat::update_many()
            .col_expr(
                event_seat::Column::Status,
                Expr::value(SeatStatus::Sold.as_str()),
            )
            .col_expr(event_seat::Column::OrderId, Expr::value(order.id))
            .col_expr(
                event_seat::Column::Version,
                Expr::col(event_seat::Column::Version).add(1),
            )
            .col_expr(event_seat::Column::UpdatedAt, Expr::value(now))
            .filter(event_seat::Column::EventId.eq(order.event_id))
            .filter(event_seat::Column::SeatId.is_in(seat_ids.clone()))
            .filter(event_seat::Column::Status.eq(SeatStatus::Available))
            .exec(&txn)
            .await?;
        if retaken.rows_affected != seat_ids.len() as u64 {
            return Err(AppError::Conflict(
                "some seats were taken by someone else since the cancellation".into(),
            ));
        }
    }
    let mut per_tier: BTreeMap<Uuid, i32> = BTreeMap::new();
    for ticket in &tickets {
        *per_tier.entry(ticket.tier_id).or_default() += 1;
    }
    for (tier_id, count) in &per_tier {
        let taken = TicketTier::update_many()
            .col_expr(
                entity::ticket_tier::Column::Available,
                Expr::col(entity::ticket_tier::Column::Available).sub(*count),
            )
            .filter(entity::ticket_tier::Column::Id.eq(*tier_id))
            .filter(entity::ticket_tier::Column::Available.gte(*count))
            .exec(&txn)
            .await?;
        if taken.rows_affected == 0 {
            return Err(AppError::SoldOut(
                "the tickets were sold to someone else since the cancellation".into(),
            ));
        }
    }
    let resold: Vec<(Uuid, SeatStatus, Uuid)> = tickets
        .iter()
        .filter_map(|t| t.seat_id.map(|seat| (seat, SeatStatus::Sold, t.tier_id)))
        .collect();
    changelog::record(&txn, order.event_id, &resold, now).await?;
    for ticket in &tickets {
        Ticket::update_many()
            .col_expr(
                ticket::Column::Status,
                Expr::value(TicketStatus::Valid.as_str()),
            )
            .col_expr(
                ticket::Column::CancelledAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(ticket::Column::Nonce, Expr::value(new_ticket_nonce()))
            .filter(ticket::Column::Id.eq(ticket.id))
            .exec(&txn)
            .await?;
    }
    let restored = set_status(&txn, order, OrderStatus::Paid, None, now).await?;
    txn.commit().await?;
    Ok(restored)
}

/// Moves a locked order to `status`, with `cancelled_at` set (cancelling) or cleared (restoring), in
/// the caller's transaction; returns the order as stored.
async fn set_status(
    txn: &DatabaseTransaction,
    order: order::Model,
    status: OrderStatus,
    cancelled_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> AppResult<order::Model> {
    let mut active: order::ActiveModel = order.into();
    active.status = Set(status);
    active.cancelled_at = Set(cancelled_at);
    active.updated_at = Set(now);
    Ok(active.update(txn).await?)
}

/// Refunds full cancellations whose undo window has closed.
pub async fn refund_closed_cancellations(
    db: &DatabaseConnection,
    payments: &dyn PaymentProvider,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let due = Order::find()
        .filter(crate::db::equals_constant(
            order::Column::Status,
            OrderStatus::Cancelled.as_str(),
        ))
        .filter(order::Column::CancelledAt.lte(now - Duration::minutes(UNDO_WINDOW_MINUTES)))
        .filter(Expr::col(order::Column::RefundedCents).lt(Expr::col(order::Column::TotalCents)))
        .limit(100)
        .all(db)
        .await?;
    refund_orders(db, payments, &due).await
}

/// Tickets of the given orders.
pub async fn tickets_of_orders(
    db: &impl ConnectionTrait,
    order_ids: &[Uuid],
) -> AppResult<Vec<ticket::Model>> {
    Ok(Ticket::find()
        .filter(ticket::Column::OrderId.is_in(order_ids.iter().copied()))
        .order_by_asc(ticket::Column::Id)
        .all(db)
        .await?)
}

/// Lines of the given orders.
pub async fn lines_of_orders(
    db: &impl ConnectionTrait,
    order_ids: &[Uuid],
) -> AppResult<Vec<order_line::Model>> {
    Ok(OrderLine::find()
        .filter(order_line::Column::OrderId.is_in(order_ids.iter().copied()))
        .all(db)
        .await?)
}

//! Checkouts (`checkout`) converted per event in shared transactions.
//!
//! Turning a paid hold into an order sells its seats, so it takes the event's next change-log number,
//! and the sequence row stays locked until the conversion commits (see `events::changelog`): one at a
//! time, an event's checkouts, and the seat holds behind them, commit one durable flush after another.
//! Here the conversions of one event queue on a lane (see [`crate::lanes`]) and a batch converts them
//! in one transaction (`service::convert_holds`, which converts a single hold one at a time too):
//!
//! 1. the holds are locked (`FOR UPDATE`, in id order) and each still active one becomes an order, in
//!    arrival order; a hold the sweeper expired meanwhile, or converted already by an earlier request
//!    (two checkouts of one hold with different keys), answers HOLD_EXPIRED and its charge is refunded
//!    by the caller, as on the one-at-a-time path;
//! 2. multi-row inserts of orders, lines, tickets and payments; one update sells every seat to its
//!    order, one update marks the holds converted, waitlist offers are closed, one change-log entry.
//!
//! The payments are made before a request joins the lane, with no transaction open. The database
//! stays the last guard (the one-order-per-hold key, one valid ticket per seat): a batch that breaks
//! one fails as a whole, and each of its requests is then converted on its own by the one-at-a-time
//! path, so one bad request cannot fail the others.

use std::sync::Arc;

use entity::order;
use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::booking::coalesce::BookingPath;
use crate::booking::lanes::answer_all;
use crate::booking::service::{self, Conversion};
use crate::error::AppResult;
use crate::lanes::{CoalescingStats, Lanes, Tail};

/// What the lane answers: the order, HOLD_EXPIRED, or `Ok(None)`: the batch failed as a whole, so
/// convert this one on its own.
type Answer = AppResult<Option<order::Model>>;

struct Request {
    conversion: Conversion,
    reply: oneshot::Sender<Answer>,
}

/// Converts paid holds into orders by the configured path (`BOOKING_PATH`). Cheap to clone.
#[derive(Clone)]
pub struct Checkouts {
    inner: Arc<Inner>,
}

struct Inner {
    path: BookingPath,
    db: DatabaseConnection,
    lanes: Arc<Lanes<Request>>,
}

impl Checkouts {
    pub fn new(path: BookingPath, db: DatabaseConnection) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                db,
                lanes: Lanes::new(),
            }),
        }
    }

    /// The order the paid hold became, or HOLD_EXPIRED if it is no longer active.
    pub async fn convert(&self, conversion: Conversion) -> AppResult<order::Model> {
        let inner = &self.inner;
        if inner.path == BookingPath::Simple {
            return service::convert_hold(&inner.db, &conversion).await;
        }
        let checkouts = self.clone();
        let answer = inner
            .lanes
            .ask(
                conversion.hold.event_id,
                |reply| Request {
                    conversion: conversion.clone(),
                    reply,
                },
                move |batch| {
                    let checkouts = checkouts.clone();
                    async move { convert_batch(&checkouts.inner, batch).await }
                },
            )
            .await?;
        match answer {
            Some(order) => Ok(order),
            None => service::convert_hold(&inner.db, &conversion).await,
        }
    }

    /// Batches run and the requests they served, since start.
    pub fn stats(&self) -> CoalescingStats {
        self.inner.lanes.stats()
    }
}

async fn convert_batch(inner: &Inner, batch: Vec<Request>) -> Option<Tail> {
    let (conversions, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|request| (request.conversion, request.reply))
        .unzip();
    let outcomes = match service::convert_holds(&inner.db, &conversions).await {
        Ok(orders) => orders
            .into_iter()
            .map(|order| Some(order.map(Some)))
            .collect(),
        Err(err) => {
            tracing::warn!(size = conversions.len(), error = %err, "a checkout batch failed; converting its holds one at a time");
            (0..conversions.len()).map(|_| Some(Ok(None))).collect()
        }
    };
    let event_id = conversions
        .first()
        .map_or(Uuid::nil(), |conversion| conversion.hold.event_id);
    answer_all(replies, Ok(outcomes), "checkout", event_id);
    None
}

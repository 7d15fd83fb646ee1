//! The state every request handler and resolver shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::throttle::Throttles;
use crate::auth::tokens::TokenKeys;
use crate::booking::checkout_lane::Checkouts;
use crate::booking::coalesce::DirectBooking;
use crate::booking::seat_lane::SeatHolding;
use crate::config::Config;
use crate::db::StatementCounter;
use crate::events::live_feed::SeatFeeds;
use crate::live::Bus;
use crate::metrics::Metrics;
use crate::payments::Payments;
use crate::queue::pass::PassKeys;
use crate::tickets::signing::TicketSigner;
use crate::websocket::ConnectionRegistry;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    /// Configuration the server started with.
    pub config: Arc<Config>,
    /// Connection pool (PostgreSQL, or one SQLite connection in embedded mode).
    pub db: DatabaseConnection,
    /// Live event bus (in-process, or Redis pub/sub across instances).
    pub bus: Bus,
    /// Statements executed since start, for tests and metrics.
    pub statements: Arc<StatementCounter>,
    /// Signs and verifies access tokens.
    pub tokens: TokenKeys,
    /// Signs and verifies waiting-room queue passes.
    pub passes: PassKeys,
    /// Signs ticket QR payloads with per-event Ed25519 keys.
    pub signer: TicketSigner,
    /// Login and mutation rate limits (this instance's memory).
    pub throttles: Arc<Throttles>,
    /// The payment provider (the simulated one unless a real one is wired in).
    pub payments: Payments,
    /// `bookTickets`, by the configured path (per-tier coalescing or one transaction pair each).
    pub direct_booking: DirectBooking,
    /// `holdBestAvailable` and `holdSeats`, by the configured path (per-event coalescing or one
    /// transaction each).
    pub seat_holding: SeatHolding,
    /// `checkout`'s conversion of paid holds into orders, by the configured path (per-event
    /// coalescing or one transaction each).
    pub checkouts: Checkouts,
    /// Live seat-map feeds of the events this instance has subscribers for.
    pub feeds: SeatFeeds,
    /// Open WebSocket connections per user on this instance.
    pub ws_connections: ConnectionRegistry,
    /// This instance's Prometheus metrics, served at `/metrics`.
    pub metrics: Metrics,
}

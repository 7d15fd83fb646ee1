//! Seat Storm: a GraphQL API for live event ticketing that holds up in a ticket war.

/// HTTP server: router, GraphQL endpoints, health checks, graceful shutdown.
pub mod app;
/// Accounts, sessions (access and refresh tokens), roles, avatars, throttling.
pub mod auth;
/// Holds, checkout, direct booking, idempotency, and the hold sweeper.
pub mod booking;
/// Typed configuration from environment variables.
pub mod config;
/// Connection pool, migrations, statement counter.
pub mod db;
/// Demo venues, events and accounts for the embedded default.
pub mod demo;
/// The live seat-map page served at `/demo`.
pub mod demo_page;
/// The error type and its stable GraphQL codes.
pub mod error;
/// Events, ticket tiers, seat inventory and the seat map.
pub mod events;
/// Shared GraphQL plumbing: context access, per-request DataLoaders, IDs, cursors.
pub mod gql;
/// Request-wide guardrails: error codes before execution, mutation rate limit.
pub mod guardrails;
/// Per-id queues that serve whatever waits as one batch (coalesced booking, shared reads).
pub(crate) mod lanes;
/// The live event bus.
pub mod live;
/// Prometheus metrics: GraphQL operations, bookings, errors, transports, bus, pool, queues.
pub mod metrics;
/// Stored notifications for users.
pub mod notifications;
/// Orders: listing, cancellation (full, partial, undo).
pub mod orders;
/// Payment provider trait, the simulated provider, refunds.
pub mod payments;
/// Persisted queries: Apollo's automatic persisted queries and the known-documents-only mode.
pub mod persisted;
/// The virtual waiting room for on-sales: queue positions, paced admission, queue passes.
pub mod queue;
/// The GraphQL schema and SDL export.
pub mod schema;
/// Shared application state.
pub mod state;
/// Signed ticket codes, verification and check-in at the door.
pub mod tickets;
/// GraphQL over HTTP and WebSocket, with authentication.
pub mod transport;
/// Venues, sections and seats.
pub mod venues;
/// Waitlists for sold-out tiers and sections, and promotion of freed stock.
pub mod waitlist;
/// One WebSocket connection: authentication and limits around async-graphql's protocol handling.
pub mod websocket;

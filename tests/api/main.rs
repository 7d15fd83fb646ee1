//! Integration tests: each starts the real app on 127.0.0.1:0 against a fresh database (SQLite by
//! default; PostgreSQL when TEST_DATABASE_URL is set) and talks to it over HTTP and WebSocket.

mod auth;
mod booking;
mod demo_page;
mod direct_seat_map;
mod errors;
mod events;
mod hardening;
mod helpers;
mod live;
mod notifications;
mod ops;
mod order_updates;
mod organizer;
mod queue;
mod schema;
mod seat_snapshots;
mod server;
mod subscriptions;
mod tickets;
mod venues;
mod waitlist;
mod ws_limits;

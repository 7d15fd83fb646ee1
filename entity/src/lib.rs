//! SeaORM entities for Seat Storm: one module per table, plus the string enums stored in them.
//!
//! Entities carry no API concerns (no GraphQL derives): the API exposes its own types built from these
//! models, so a column such as `users.password_hash` can never become a field by accident.

pub mod buyer_ticket_count;
pub mod enums;
pub mod event;
pub mod event_queue;
pub mod event_seat;
pub mod event_section;
pub mod event_sequence;
pub mod hold;
pub mod idempotency_key;
pub mod notification;
pub mod order;
pub mod order_line;
pub mod payment;
pub mod prelude;
pub mod queue_entry;
pub mod refresh_token;
pub mod seat;
pub mod seat_change;
pub mod section;
pub mod ticket;
pub mod ticket_tier;
pub mod user;
pub mod venue;
pub mod waitlist_entry;

//! Orders after checkout: listing, full and partial cancellation, and undoing a cancellation.
//!
//! Invariants: cancelling returns exactly the cancelled tickets' stock, in the same transaction
//! that cancels them (lock order: order row, seats, tiers). A full cancellation can be undone for
//! [`UNDO_WINDOW_MINUTES`](crate::orders::service::UNDO_WINDOW_MINUTES) minutes if its seats are
//! still free; its refund is therefore paid only when that window closes (by the sweeper). A
//! partial reduction cannot be undone and is refunded at once.

pub mod graphql;
pub mod loaders;
pub mod service;
pub mod subscriptions;

//! Booking: holds on general-admission stock and reserved seats, checkout into paid orders, direct
//! booking, and the sweeper that expires holds.
//!
//! Invariants, each guarded by the database as well as by this code:
//! - a tier's `available` never goes below 0 or above `capacity` (CHECK);
//! - a seat is `available`, `held` by one hold, or `sold` to one order (CHECK on `event_seats`), and at
//!   most one valid ticket exists per seat (partial unique index);
//! - a user has at most one active hold per event (partial unique index), a hold becomes at most one
//!   order (unique `orders.hold_id`);
//! - `sold + held + available = capacity` for every tier, because every change moves stock between
//!   those states inside one transaction.
//!
//! Lock order (PostgreSQL), the same in every transaction so none can deadlock: the owning row first
//! (hold or order), then seats in `seat_id` order, then tiers in `id` order. Best-available skips seats
//! another transaction has locked (`FOR UPDATE SKIP LOCKED`), so buyers never wait on each other's seats.
//! No lock is held while the payment provider is called.

pub mod best_available;
pub mod checkout_lane;
pub mod coalesce;
pub mod graphql;
pub mod idempotency;
pub mod lanes;
pub mod loaders;
pub mod seat_lane;
pub mod service;
pub mod sweeper;

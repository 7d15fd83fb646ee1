//! Events, their ticket tiers, and the per-event seat inventory.
//!
//! Invariants: only published events (on sale or cancelled) are visible to the public; a tier's
//! `0 <= available <= capacity` is enforced by a CHECK; publishing creates one `event_seats` row per seat
//! of every reserved section the event sells, in the same transaction that flips the status.

pub mod changelog;
pub mod direct_seat_map;
pub mod event_reads;
pub mod feed_map;
pub mod graphql;
pub mod live_feed;
pub mod loaders;
pub mod manage;
pub mod mutations;
pub mod seat_map;
pub mod service;
pub mod subscriptions;

//! Venues, their sections and seat layouts.
//!
//! Invariants: a seat belongs to exactly one section of its venue; (section, row, number) is unique;
//! `row_index` counts from the front of the section, which is what best-available ranks by.

pub mod graphql;
pub mod layout;
pub mod loaders;
pub mod service;

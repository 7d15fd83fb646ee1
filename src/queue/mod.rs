//! The virtual waiting room: a fair way in when demand is far above capacity. See `service` for the
//! ordering and admission rules and `pass` for what admitted shoppers show when they book.

pub mod graphql;
pub mod pass;
pub mod service;

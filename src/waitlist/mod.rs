//! Waitlists: buyers queue for a sold-out tier or section, and freed stock is offered to them in order
//! as a hold they can claim within a window. See `promotion` for the policy and its guarantees.

pub mod graphql;
pub mod promotion;
pub mod service;

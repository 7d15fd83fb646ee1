//! Notifications for users: stored in the database, written in the same transaction as the change
//! they report (so a rolled-back change never notifies), read and marked read by their owner, and
//! pushed live: after the commit the writer publishes `NotificationsChanged` for the user, and each
//! live subscriber reads what is newer than the last one it delivered.

pub mod graphql;
pub mod service;

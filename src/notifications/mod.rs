//! Notifications for users: stored in the database, written in the same transaction as the change
//! they report (so a rolled-back change never notifies), read and marked read by their owner.

pub mod service;

//! Accounts and credentials.
//!
//! Invariants: passwords are stored only as argon2id hashes; emails are stored normalised (trimmed,
//! lowercase), which the database checks.

pub mod password;

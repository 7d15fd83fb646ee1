//! Accounts, credentials, tokens and roles.
//!
//! Invariants: passwords are stored only as argon2id hashes, refresh tokens only as SHA-256 hashes;
//! emails are stored normalised (trimmed, lowercase), which the database checks and keeps unique.
//! Refresh tokens are single-use: each refresh marks the presented token used and issues a sibling in
//! the same family; presenting a used token again revokes the whole family (reuse detection).

pub mod avatar;
pub mod graphql;
pub mod guards;
pub mod password;
pub mod service;
pub mod throttle;
pub mod tokens;

use entity::enums::Role;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// The authenticated caller of a request, from a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: Uuid,
    pub role: Role,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// FORBIDDEN unless the viewer owns the resource (by its owner's user id) or is an admin.
    pub fn ensure_owner(&self, owner_id: Uuid, what: &str) -> AppResult<()> {
        if self.is_admin() || self.user_id == owner_id {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "you do not manage this {what}"
            )))
        }
    }
}

/// An email address as stored: trimmed, lowercase, plausibly shaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> AppResult<Self> {
        let email = raw.trim().to_lowercase();
        let invalid = || AppError::bad_input("email is not a valid address");
        if email.len() > 254 || email.chars().any(char::is_whitespace) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@');
        if local.is_empty() || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8 to 128 characters.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> AppResult<Self> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(AppError::bad_input(format!(
                "password must be {} to {} characters",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A display name: 1 to 100 characters after trimming.
pub fn parse_name(raw: &str) -> AppResult<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input("name must be 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        let email = Email::parse("  Casey.Customer@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "casey.customer@example.com");
    }

    #[test]
    fn implausible_emails_are_bad_user_input() {
        for raw in [
            "",
            "no-at-sign",
            "@example.com",
            "a@b",
            "a@.com",
            "a@b.",
            "a b@c.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn passwords_must_be_between_8_and_128_characters() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse(&"x".repeat(129)).is_err());
        assert!(NewPassword::parse("long enough").is_ok());
    }

    #[test]
    fn only_owners_and_admins_manage_a_resource() {
        let owner = Uuid::now_v7();
        let organizer = Viewer {
            user_id: owner,
            role: Role::Organizer,
        };
        let other = Viewer {
            user_id: Uuid::now_v7(),
            role: Role::Organizer,
        };
        let admin = Viewer {
            user_id: Uuid::now_v7(),
            role: Role::Admin,
        };
        assert!(organizer.ensure_owner(owner, "event").is_ok());
        assert!(admin.ensure_owner(owner, "event").is_ok());
        assert!(matches!(
            other.ensure_owner(owner, "event"),
            Err(AppError::Forbidden(_))
        ));
    }
}

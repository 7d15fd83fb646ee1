//! Access tokens (short-lived HS256 JWTs) and refresh tokens (random, stored only as SHA-256 hashes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use entity::enums::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::Secret;
use crate::error::{AppError, AppResult};

const ISSUER: &str = "seatstorm";
/// Verified access tokens remembered at most; past it the memory starts over (every buyer of a
/// ticket war fits many times over).
const VERIFIED_TOKENS: usize = 10_000;

/// What an access token asserts. The role is a snapshot: a changed role takes effect at the next refresh.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// Signs and verifies access tokens with the configured secret. Cheap to clone: `AppState` (and with it
/// this) is cloned for every HTTP request, and cloning the keys and the `Validation` (hash sets) by
/// value allocated more than verifying the token does (docs/profiling.md).
#[derive(Clone)]
pub struct TokenKeys(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    /// Tokens that verified, by their whole text, with their claims. A client sends the same token
    /// with every request for its lifetime, and base64 + HMAC + JSON for each was 3.8 % of the
    /// server's CPU in a GA storm (docs/profiling.md). A hit is a token whose signature was checked
    /// before, so only its expiry is checked again.
    verified: Mutex<HashMap<String, Claims>>,
}

impl TokenKeys {
    pub fn new(secret: &Secret, access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        // Expiry is exact: a token is refused the second it expires.
        validation.leeway = 0;
        Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            access_ttl,
            verified: Mutex::default(),
        }))
    }

    /// Issues an access token for `user_id` with `role`; returns it with its expiry.
    pub fn issue(
        &self,
        user_id: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> AppResult<(String, DateTime<Utc>)> {
        let expires_at = now + self.0.access_ttl;
        let claims = Claims {
            sub: user_id,
            role,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: ISSUER.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
            .map_err(|err| {
                AppError::Internal(anyhow::anyhow!("signing an access token failed: {err}"))
            })?;
        Ok((token, expires_at))
    }

    /// Verifies signature, issuer and expiry. Any failure is UNAUTHENTICATED.
    pub fn verify(&self, token: &str) -> AppResult<Claims> {
        // The clock jsonwebtoken checks expiry with, so a remembered token expires when a fresh
        // verification would refuse it.
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
        self.verify_at(token, now)
    }

    fn verify_at(&self, token: &str, now: i64) -> AppResult<Claims> {
        let remembered = self.verified().get(token).cloned();
        let claims = match remembered {
            Some(claims) => claims,
            None => {
                let claims =
                    jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)
                        .map(|data| data.claims)
                        .map_err(|err| match err.kind() {
                            jsonwebtoken::errors::ErrorKind::ExpiredSignature => expired(),
                            _ => AppError::Unauthenticated("the access token is invalid".into()),
                        })?;
                let mut verified = self.verified();
                if verified.len() >= VERIFIED_TOKENS {
                    verified.clear();
                }
                verified.insert(token.to_owned(), claims.clone());
                claims
            }
        };
        // jsonwebtoken's rule with no leeway: valid up to and including the second of `exp`.
        if claims.exp < now {
            return Err(expired());
        }
        Ok(claims)
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claims>> {
        self.0
            .verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn expired() -> AppError {
    AppError::Unauthenticated("the access token has expired".into())
}

/// A new refresh token: the value handed to the client once, and the hash that is stored.
pub struct RefreshSecret {
    pub token: String,
    pub hash: String,
}

pub fn new_refresh_token() -> RefreshSecret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    let hash = hash_refresh_token(&token);
    RefreshSecret { token, hash }
}

/// Refresh tokens carry 256 random bits, so a fast unsalted hash is enough to make a stolen table useless.
pub fn hash_refresh_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(&Secret::new(secret), Duration::minutes(15))
    }

    #[test]
    fn an_issued_token_verifies_and_carries_the_user_and_role() {
        let keys = keys("one-secret-that-is-long-enough-for-hs256");
        let user = Uuid::now_v7();
        let (token, _) = keys
            .issue(user, Role::Organizer, Utc::now())
            .expect("signing works");
        let claims = keys.verify(&token).expect("valid");
        assert_eq!((claims.sub, claims.role), (user, Role::Organizer));
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_unauthenticated() {
        let keys_a = keys("one-secret-that-is-long-enough-for-hs256");
        let keys_b = keys("another-secret-that-is-long-enough-too!!");
        let user = Uuid::now_v7();
        let (expired, _) = keys_a
            .issue(user, Role::Customer, Utc::now() - Duration::hours(1))
            .expect("signing works");
        let (foreign, _) = keys_b
            .issue(user, Role::Admin, Utc::now())
            .expect("signing works");
        let (valid, _) = keys_a
            .issue(user, Role::Customer, Utc::now())
            .expect("signing works");
        // Swap the payload for one claiming ADMIN while keeping the original signature.
        let mut parts: Vec<&str> = valid.split('.').collect();
        let admin_payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&serde_json::json!({
                "sub": user, "role": "admin", "iat": Utc::now().timestamp(),
                "exp": Utc::now().timestamp() + 900, "iss": "seatstorm"
            }))
            .expect("json"),
        );
        parts[1] = &admin_payload;
        let forged = parts.join(".");
        for token in [
            expired.as_str(),
            foreign.as_str(),
            forged.as_str(),
            "garbage",
        ] {
            assert!(
                matches!(keys_a.verify(token), Err(AppError::Unauthenticated(_))),
                "{token}"
            );
        }
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_refused_one_is_not_remembered() {
        let keys = keys("one-secret-that-is-long-enough-for-hs256");
        let (token, expires_at) = keys
            .issue(Uuid::now_v7(), Role::Customer, Utc::now())
            .expect("signing works");
        let exp = expires_at.timestamp();
        let first = keys.verify_at(&token, exp - 60).expect("valid");
        assert_eq!(keys.verified().len(), 1, "remembered");
        assert_eq!(
            keys.verify_at(&token, exp)
                .expect("valid to its last second"),
            first
        );
        assert!(
            matches!(keys.verify_at(&token, exp + 1), Err(AppError::Unauthenticated(m)) if m.contains("expired")),
            "a remembered token expires like any other"
        );
        let mut tampered = token.clone();
        tampered.push('x');
        assert!(keys.verify(&tampered).is_err());
        assert_eq!(
            keys.verified().len(),
            1,
            "only tokens that verified are remembered"
        );
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a.token, b.token);
        assert_eq!(a.hash, hash_refresh_token(&a.token));
        assert_ne!(a.hash, a.token);
        assert_eq!(a.hash.len(), 64);
    }
}

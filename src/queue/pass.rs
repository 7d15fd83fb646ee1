//! Queue passes: what an admitted shopper shows to hold or book on a waiting-room event.
//!
//! A pass is an HS256 token naming the user and the event, valid until the shopper's admission ends.
//! It is checked without the database, so the hot booking path pays no query for it. Its key is
//! derived from the JWT secret under its own label, so an access token can never pass for a queue
//! pass or the other way round.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::Secret;
use crate::error::{AppError, AppResult};

const AUDIENCE: &str = "seatstorm:queue-pass";

#[derive(Debug, Serialize, Deserialize)]
struct PassClaims {
    sub: Uuid,
    evt: Uuid,
    exp: i64,
    aud: String,
}

/// Signs and verifies queue passes. Cheap to clone, as every `AppState` field must be (it is cloned
/// per request).
#[derive(Clone)]
pub struct PassKeys(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl PassKeys {
    pub fn new(secret: &Secret) -> Self {
        let key = Sha256::new()
            .chain_update(b"seatstorm queue pass\0")
            .chain_update(secret.expose().as_bytes())
            .finalize();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        validation.leeway = 0;
        Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
        }))
    }

    /// A pass for `user_id` on `event_id`, valid until `expires_at`.
    pub fn issue(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> AppResult<String> {
        let claims = PassClaims {
            sub: user_id,
            evt: event_id,
            exp: expires_at.timestamp(),
            aud: AUDIENCE.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding).map_err(
            |err| AppError::Internal(anyhow::anyhow!("signing a queue pass failed: {err}")),
        )
    }

    /// The event the pass admits `user_id` to. Forged, expired or someone else's: QUEUE_REQUIRED.
    pub fn verify(&self, pass: &str, user_id: Uuid) -> AppResult<Uuid> {
        let claims = jsonwebtoken::decode::<PassClaims>(pass, &self.0.decoding, &self.0.validation)
            .map_err(|err| {
                AppError::QueueRequired(match err.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        "your queue pass has expired: join the queue again".to_owned()
                    }
                    _ => "the queue pass is invalid".to_owned(),
                })
            })?
            .claims;
        if claims.sub != user_id {
            return Err(AppError::QueueRequired(
                "this queue pass belongs to someone else".into(),
            ));
        }
        Ok(claims.evt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> PassKeys {
        PassKeys::new(&Secret::new(secret))
    }

    #[test]
    fn a_pass_admits_its_user_to_its_event_only() {
        let keys = keys("a-secret-long-enough-for-tests");
        let (user, event) = (Uuid::new_v4(), Uuid::new_v4());
        let pass = keys
            .issue(user, event, Utc::now() + chrono::Duration::minutes(5))
            .expect("signed");
        assert_eq!(keys.verify(&pass, user).expect("valid"), event);
        let theirs = keys.verify(&pass, Uuid::new_v4()).expect_err("not theirs");
        assert_eq!(theirs.code(), "QUEUE_REQUIRED");
    }

    #[test]
    fn expired_forged_and_foreign_passes_are_refused() {
        let keys = keys("a-secret-long-enough-for-tests");
        let (user, event) = (Uuid::new_v4(), Uuid::new_v4());
        let expired = keys
            .issue(user, event, Utc::now() - chrono::Duration::seconds(1))
            .expect("signed");
        let valid = keys
            .issue(user, event, Utc::now() + chrono::Duration::minutes(5))
            .expect("signed");
        let mut tampered = valid.clone();
        tampered.pop();
        tampered.push(if valid.ends_with('A') { 'B' } else { 'A' });
        let foreign = self::keys("another-secret-long-enough")
            .issue(user, event, Utc::now() + chrono::Duration::minutes(5))
            .expect("signed");
        for pass in [expired, tampered, foreign, "not.a.pass".to_owned()] {
            let refused = keys.verify(&pass, user).expect_err("refused");
            assert_eq!(refused.code(), "QUEUE_REQUIRED", "{pass}");
        }
    }
}

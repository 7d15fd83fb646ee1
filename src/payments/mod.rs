//! Payments through a provider behind a trait, with a deterministic simulated provider built in.
//!
//! Invariant: no database lock or transaction is held while a provider is called; callers record
//! the outcome (the `payments` table) in a transaction of its own afterwards.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

/// What a charge came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded { reference: String },
    Declined { reason: String },
}

/// What a refund came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    Succeeded { reference: String },
    Failed { reason: String },
}

/// A payment service provider. Object-safe, so the app holds `Arc<dyn PaymentProvider>` and tests can
/// put a slow or failing one in its place.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// A short name stored with each payment.
    fn name(&self) -> &'static str;

    /// Charges `amount_cents` using the client's payment token. The idempotency key makes a retried
    /// charge return the first outcome instead of charging twice.
    async fn charge(
        &self,
        payment_token: &str,
        amount_cents: i64,
        currency: &str,
        idempotency_key: Uuid,
    ) -> anyhow::Result<ChargeOutcome>;

    /// Refunds `amount_cents` of an earlier charge.
    async fn refund(
        &self,
        charge_reference: &str,
        amount_cents: i64,
    ) -> anyhow::Result<RefundOutcome>;
}

/// A provider whose outcome is decided by the payment token, so tests and demos are deterministic:
/// - `tok_visa` (or any other token) succeeds;
/// - `tok_decline` is always declined;
/// - `tok_chance_NN` succeeds for NN percent of idempotency keys, chosen by the key itself so a retry
///   with the same key gets the same answer.
#[derive(Debug, Default, Clone)]
pub struct SimulatedProvider;

pub const DECLINING_TOKEN: &str = "tok_decline";

#[async_trait]
impl PaymentProvider for SimulatedProvider {
    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn charge(
        &self,
        payment_token: &str,
        _amount_cents: i64,
        _currency: &str,
        idempotency_key: Uuid,
    ) -> anyhow::Result<ChargeOutcome> {
        let declined = if payment_token == DECLINING_TOKEN {
            true
        } else if let Some(percent) = payment_token.strip_prefix("tok_chance_") {
            let percent: u128 = percent.parse().unwrap_or(100).min(100);
            idempotency_key.as_u128() % 100 >= percent
        } else {
            false
        };
        Ok(if declined {
            ChargeOutcome::Declined {
                reason: "the card was declined".into(),
            }
        } else {
            ChargeOutcome::Succeeded {
                reference: format!("sim_ch_{}", idempotency_key.simple()),
            }
        })
    }

    async fn refund(
        &self,
        charge_reference: &str,
        _amount_cents: i64,
    ) -> anyhow::Result<RefundOutcome> {
        Ok(RefundOutcome::Succeeded {
            reference: format!("sim_re_{}_{}", charge_reference, Uuid::new_v4().simple()),
        })
    }
}

/// The provider the app uses, shareable across tasks.
pub type Payments = Arc<dyn PaymentProvider>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_simulated_provider_is_deterministic_by_token_and_key() {
        let provider = SimulatedProvider;
        let key = Uuid::now_v7();
        assert!(matches!(
            provider.charge("tok_visa", 100, "USD", key).await.ok(),
            Some(ChargeOutcome::Succeeded { .. })
        ));
        assert!(matches!(
            provider.charge(DECLINING_TOKEN, 100, "USD", key).await.ok(),
            Some(ChargeOutcome::Declined { .. })
        ));
        let first = provider.charge("tok_chance_50", 100, "USD", key).await.ok();
        let again = provider.charge("tok_chance_50", 100, "USD", key).await.ok();
        assert_eq!(first, again, "the same key gets the same outcome");
        let successes = futures::future::join_all(
            (0..200).map(|_| provider.charge("tok_chance_50", 100, "USD", Uuid::new_v4())),
        )
        .await
        .into_iter()
        .filter(|o| matches!(o, Ok(ChargeOutcome::Succeeded { .. })))
        .count();
        assert!(
            (50..150).contains(&successes),
            "about half succeed, got {successes}"
        );
    }
}
pub mod service;

//! Recording payments and refunding orders.

use chrono::Utc;
use entity::enums::{PaymentKind, PaymentStatus};
use entity::prelude::*;
use entity::{order, payment};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::error::AppResult;
use crate::payments::{PaymentProvider, RefundOutcome};

/// Refunds what is left to refund of each order, one provider call per order with no transaction open
/// during the call. A failed refund is recorded as such and logged; it can be retried later because
/// `refunded_cents` only moves when a refund succeeds.
pub async fn refund_orders(
    db: &DatabaseConnection,
    provider: &dyn PaymentProvider,
    orders: &[order::Model],
) -> AppResult<()> {
    for order in orders {
        let amount = order.total_cents - order.refunded_cents;
        if amount <= 0 {
            continue;
        }
        let Some(charge_reference) = order.payment_reference.as_deref() else {
            continue;
        };
        let outcome = match provider.refund(charge_reference, amount).await {
            Ok(outcome) => outcome,
            Err(err) => RefundOutcome::Failed {
                reason: format!("{err:#}"),
            },
        };
        let (status, reference) = match &outcome {
            RefundOutcome::Succeeded { reference } => {
                (PaymentStatus::Succeeded, Some(reference.clone()))
            }
            RefundOutcome::Failed { reason } => {
                tracing::error!(order.id = %order.id, reason, "refund failed");
                (PaymentStatus::Failed, None)
            }
        };
        payment::ActiveModel {
            id: Set(Uuid::now_v7()),
            order_id: Set(Some(order.id)),
            user_id: Set(order.user_id),
            kind: Set(PaymentKind::Refund),
            amount_cents: Set(amount),
            currency: Set(order.currency.clone()),
            provider: Set(provider.name().to_owned()),
            provider_reference: Set(reference),
            status: Set(status),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
        if status == PaymentStatus::Succeeded {
            Order::update_many()
                .col_expr(
                    order::Column::RefundedCents,
                    Expr::col(order::Column::RefundedCents).add(amount),
                )
                .filter(order::Column::Id.eq(order.id))
                .exec(db)
                .await?;
        }
    }
    Ok(())
}

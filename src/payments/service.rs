//! Recording refunds. A refund is claimed before the provider is called: the order's `refunded_cents`
//! moves first with a conditional update, so two instances can never pay the same refund twice, and the
//! claim is undone if the provider fails (the refund can then be retried).

use chrono::Utc;
use entity::enums::{PaymentKind, PaymentStatus};
use entity::prelude::*;
use entity::{order, payment};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::error::AppResult;
use crate::payments::{PaymentProvider, RefundOutcome};

/// Claims and pays out what is left to refund of each order.
pub async fn refund_orders(
    db: &DatabaseConnection,
    provider: &dyn PaymentProvider,
    orders: &[order::Model],
) -> AppResult<()> {
    for order in orders {
        let Some(current) = Order::find_by_id(order.id).one(db).await? else {
            continue;
        };
        let amount = current.total_cents - current.refunded_cents;
        if amount <= 0 {
            continue;
        }
        let claimed = Order::update_many()
            .col_expr(
                order::Column::RefundedCents,
                Expr::col(order::Column::TotalCents),
            )
            .filter(order::Column::Id.eq(current.id))
            .filter(order::Column::RefundedCents.eq(current.refunded_cents))
            .exec(db)
            .await?
            .rows_affected;
        if claimed == 1 {
            pay_out_claimed_refund(db, provider, &current, amount).await?;
        }
    }
    Ok(())
}

/// Pays out a refund whose amount the order's `refunded_cents` already includes. On failure the claim
/// is taken back and a failed refund is recorded.
pub async fn pay_out_claimed_refund(
    db: &DatabaseConnection,
    provider: &dyn PaymentProvider,
    order: &order::Model,
    amount: i64,
) -> AppResult<()> {
    let Some(charge_reference) = order.payment_reference.as_deref() else {
        return Ok(());
    };
    let outcome = match provider.refund(charge_reference, amount).await {
        Ok(outcome) => outcome,
        Err(err) => RefundOutcome::Failed {
            reason: format!("{err:#}"),
        },
    };
    let (status, reference) = match outcome {
        RefundOutcome::Succeeded { reference } => (PaymentStatus::Succeeded, Some(reference)),
        RefundOutcome::Failed { reason } => {
            tracing::error!(order.id = %order.id, reason, "refund failed; it will be retried");
            Order::update_many()
                .col_expr(
                    order::Column::RefundedCents,
                    Expr::col(order::Column::RefundedCents).sub(amount),
                )
                .filter(order::Column::Id.eq(order.id))
                .exec(db)
                .await?;
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
    Ok(())
}

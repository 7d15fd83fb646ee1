//! The batch plumbing that coalesced booking and coalesced best-available holds share (their lanes
//! are `crate::lanes`): per-user caps for a whole batch, multi-row inserts that skip conflicting
//! rows, and telling every caller of a batch its own outcome, or why the whole batch failed.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::event;
use entity::idempotency_key;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    IntoActiveModel, QueryFilter,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::booking::service::{HoldPolicy, expire_stale_holds, owned_tickets, within_cap};
use crate::error::{AppError, AppResult};
use crate::lanes::shared;

/// One request's place in a batch while it is worked on.
pub(crate) struct Pending {
    pub index: usize,
    pub user_id: Uuid,
    pub quantity: i32,
}

impl AsRef<Pending> for Pending {
    fn as_ref(&self) -> &Pending {
        self
    }
}

/// Each request's answer, filled in as the batch decides it.
pub(crate) type Outcomes<T> = Vec<Option<AppResult<T>>>;

/// Unwraps a finished batch's outcomes; a request nobody answered is an internal error.
fn finish<T>(outcomes: Outcomes<T>) -> Vec<AppResult<T>> {
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| {
                Err(AppError::Internal(anyhow::anyhow!(
                    "a batched request got no outcome"
                )))
            })
        })
        .collect()
}

/// Sends each caller of a batch its answer; a batch-wide failure goes to all of them (see
/// [`shared`]). A caller that went away gets nothing: what the batch did for it stands (an order, or a
/// hold that expires like any other).
pub(crate) fn answer_all<T>(
    replies: Vec<oneshot::Sender<AppResult<T>>>,
    outcomes: AppResult<Outcomes<T>>,
    lane: &str,
    id: Uuid,
) {
    let size = replies.len();
    let answers = match outcomes {
        Ok(outcomes) => finish(outcomes),
        Err(err) => {
            tracing::warn!(lane, %id, size, error = %err, "a batch failed as a whole");
            (0..size).map(|_| Err(shared(&err))).collect()
        }
    };
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer);
    }
}

/// Refuses (LIMIT_EXCEEDED) the requests that would take a buyer past the event's per-user cap, counting
/// the tickets `conn` sees; returns (within the cap, refused).
pub(crate) async fn within_user_caps<T: AsRef<Pending>, O>(
    conn: &impl ConnectionTrait,
    event: &event::Model,
    requests: Vec<T>,
    outcomes: &mut Outcomes<O>,
) -> AppResult<(Vec<T>, Vec<T>)> {
    if requests.is_empty() {
        return Ok((requests, Vec::new()));
    }
    let users: Vec<Uuid> = requests.iter().map(|r| r.as_ref().user_id).collect();
    let owned = owned_tickets(conn, event.id, &users).await?;
    Ok(requests.into_iter().partition(|item| {
        let request = item.as_ref();
        let have = owned.get(&request.user_id).copied().unwrap_or(0);
        match within_cap(event, have, request.quantity as u32) {
            Ok(()) => true,
            Err(refusal) => {
                outcomes[request.index] = Some(Err(refusal));
                false
            }
        }
    }))
}

/// Expires the buyers' own stale holds (as the one-at-a-time path does), so a new hold is not refused
/// because the sweeper has not come round yet.
pub(crate) async fn expire_their_stale_holds(
    db: &DatabaseConnection,
    policy: &HoldPolicy,
    event: &event::Model,
    pending: &[Pending],
    now: DateTime<Utc>,
) -> AppResult<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let users: Vec<Uuid> = pending.iter().map(|p| p.user_id).collect();
    expire_stale_holds(db, policy, event.id, &users, now).await
}

/// Inserts the rows, skipping any that would break a unique index (`ON CONFLICT DO NOTHING`, with no
/// target so partial indexes count); returns the primary keys of those inserted.
pub(crate) async fn insert_skipping_conflicts<E, M>(
    txn: &DatabaseTransaction,
    rows: &[M],
) -> AppResult<HashSet<Uuid>>
where
    E: EntityTrait<Model = M>,
    M: sea_orm::ModelTrait<Entity = E> + IntoActiveModel<E::ActiveModel> + Clone,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: Into<Uuid>,
{
    let rows = rows
        .iter()
        .map(|row| row.clone().into_active_model().reset_all())
        .collect();
    Ok(crate::db::insert_new(txn, rows).await?)
}

/// Deletes idempotency keys whose requests failed, so a retry runs again.
pub(crate) async fn forget_keys(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<()> {
    if !ids.is_empty() {
        idempotency_key::Entity::delete_many()
            .filter(crate::db::any_of(db, idempotency_key::Column::Id, ids))
            .exec(db)
            .await?;
    }
    Ok(())
}

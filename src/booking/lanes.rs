//! Lanes: what coalesced booking and coalesced best-available holds share.
//!
//! A lane is a FIFO queue per hot row (a tier, an event's seats) served by one task, which takes
//! everything waiting as one batch and answers each request on its own reply channel. Lanes start on
//! demand and stop after a while without work. The rest of this module is the batch plumbing both
//! kinds of lane need: per-user caps for a whole batch, multi-row inserts that skip conflicting rows,
//! and telling every caller of a failed batch why.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use entity::event;
use entity::idempotency_key;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, IntoActiveModel, QueryFilter,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::booking::service::{HoldPolicy, expire_stale_holds, owned_tickets, within_cap};
use crate::error::{AppError, AppResult};

/// The most requests one batch takes; more wait for the next one. Bounds statement size and the time a
/// batch holds its locks.
pub(crate) const MAX_BATCH: usize = 512;
/// Requests that may wait on one lane before callers wait to enqueue.
const LANE_DEPTH: usize = 8192;
/// A lane with nothing to do for this long stops; the next request starts a new one.
const LANE_IDLE: StdDuration = StdDuration::from_secs(30);

/// The running lanes of one kind, by the id of what they serialise on.
pub(crate) struct Lanes<R> {
    running: Mutex<HashMap<Uuid, mpsc::Sender<R>>>,
    batches: AtomicU64,
    requests: AtomicU64,
}

/// How much coalescing happened since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalescingStats {
    pub batches: u64,
    pub requests: u64,
}

impl<R: Send + 'static> Lanes<R> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::new(HashMap::new()),
            batches: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        })
    }

    /// Queues `request` on the lane of `id`, starting one that serves its batches with `serve` if
    /// none runs. The answer comes on whatever reply channel the request carries.
    pub(crate) async fn submit<F, Fut>(
        self: &Arc<Self>,
        id: Uuid,
        mut request: R,
        serve: F,
    ) -> AppResult<()>
    where
        F: Fn(Vec<R>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut serve = Some(serve);
        // A lane that just stopped for idleness refuses the send; the retry starts a fresh one.
        for _ in 0..3 {
            let lane = self.lane(id, &mut serve)?;
            match lane.send(request).await {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(returned)) => {
                    self.forget(id, &lane)?;
                    request = returned;
                }
            }
        }
        Err(AppError::Internal(anyhow::anyhow!(
            "no lane would take the request"
        )))
    }

    /// Queues the request `make` builds around its reply channel on the lane of `id` (see
    /// [`Self::submit`]) and waits for its answer.
    pub(crate) async fn ask<T, F, Fut>(
        self: &Arc<Self>,
        id: Uuid,
        make: impl FnOnce(oneshot::Sender<AppResult<T>>) -> R,
        serve: F,
    ) -> AppResult<T>
    where
        F: Fn(Vec<R>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.submit(id, make(reply), serve).await?;
        answer.await.unwrap_or_else(|_| {
            Err(AppError::Internal(anyhow::anyhow!(
                "the lane stopped before answering"
            )))
        })
    }

    /// Batches run and the requests they served, since start.
    pub(crate) fn stats(&self) -> CoalescingStats {
        CoalescingStats {
            batches: self.batches.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }

    fn lane<F, Fut>(self: &Arc<Self>, id: Uuid, serve: &mut Option<F>) -> AppResult<mpsc::Sender<R>>
    where
        F: Fn(Vec<R>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut running = self.running()?;
        if let Some(lane) = running.get(&id).filter(|lane| !lane.is_closed()) {
            return Ok(lane.clone());
        }
        let serve = serve.take().ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("a lane stopped twice while starting"))
        })?;
        let (sender, receiver) = mpsc::channel(LANE_DEPTH);
        running.insert(id, sender.clone());
        tokio::spawn(Arc::clone(self).run(id, receiver, serve));
        Ok(sender)
    }

    fn forget(&self, id: Uuid, lane: &mpsc::Sender<R>) -> AppResult<()> {
        let mut running = self.running()?;
        if running
            .get(&id)
            .is_some_and(|current| current.same_channel(lane))
        {
            running.remove(&id);
        }
        Ok(())
    }

    fn running(&self) -> AppResult<MutexGuard<'_, HashMap<Uuid, mpsc::Sender<R>>>> {
        self.running
            .lock()
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the lanes lock is poisoned")))
    }

    /// Serves one lane: waits for a request, takes everything else already waiting, serves them as
    /// one batch, repeats; stops after [`LANE_IDLE`] without work.
    async fn run<F, Fut>(self: Arc<Self>, id: Uuid, mut receiver: mpsc::Receiver<R>, serve: F)
    where
        F: Fn(Vec<R>) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            let first = match tokio::time::timeout(LANE_IDLE, receiver.recv()).await {
                Ok(Some(first)) => first,
                Ok(None) => return,
                Err(_idle) => {
                    // Unlisted first, so new callers start a fresh lane; then whatever slipped in
                    // before the close is still served.
                    if let Ok(mut running) = self.running() {
                        running.remove(&id);
                    }
                    receiver.close();
                    let mut rest = Vec::new();
                    while let Ok(request) = receiver.try_recv() {
                        rest.push(request);
                    }
                    if !rest.is_empty() {
                        self.count(rest.len());
                        serve(rest).await;
                    }
                    return;
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.count(batch.len());
            serve(batch).await;
        }
    }

    fn count(&self, requests: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(requests as u64, Ordering::Relaxed);
    }
}

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

/// Expires the buyers' own stale holds (as the one-at-a-time path does) and refuses requests that would
/// take a buyer past the event's per-user cap.
pub(crate) async fn within_user_caps<T>(
    db: &DatabaseConnection,
    policy: &HoldPolicy,
    event: &event::Model,
    pending: Vec<Pending>,
    outcomes: &mut Outcomes<T>,
    now: DateTime<Utc>,
) -> AppResult<Vec<Pending>> {
    if pending.is_empty() {
        return Ok(pending);
    }
    let users: Vec<Uuid> = pending.iter().map(|p| p.user_id).collect();
    expire_stale_holds(db, policy, event.id, &users, now).await?;
    let owned = owned_tickets(db, event.id, &users).await?;
    Ok(pending
        .into_iter()
        .filter(|request| {
            let have = owned.get(&request.user_id).copied().unwrap_or(0);
            match within_cap(event, have, request.quantity as u32) {
                Ok(()) => true,
                Err(refusal) => {
                    outcomes[request.index] = Some(Err(refusal));
                    false
                }
            }
        })
        .collect())
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
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let inserted = E::insert_many(
        rows.iter()
            .map(|row| row.clone().into_active_model().reset_all()),
    )
    .on_conflict(OnConflict::new().do_nothing().to_owned())
    .try_insert()
    .exec_with_returning_keys(txn)
    .await?;
    Ok(match inserted {
        sea_orm::TryInsertResult::Inserted(ids) => ids.into_iter().map(Into::into).collect(),
        sea_orm::TryInsertResult::Conflicted | sea_orm::TryInsertResult::Empty => HashSet::new(),
    })
}

/// Deletes idempotency keys whose requests failed, so a retry runs again.
pub(crate) async fn forget_keys(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<()> {
    if !ids.is_empty() {
        idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::Id.is_in(ids.iter().copied()))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// A batch-wide failure, told to each caller of the batch.
fn shared(err: &AppError) -> AppError {
    match err {
        AppError::NotFound(what) => AppError::NotFound(what),
        AppError::BadUserInput(message) => AppError::BadUserInput(message.clone()),
        AppError::Conflict(message) => AppError::Conflict(message.clone()),
        AppError::SoldOut(message) => AppError::SoldOut(message.clone()),
        AppError::Database(DbErr::ConnectionAcquire(_)) => AppError::Database(
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout),
        ),
        other => AppError::Internal(anyhow::anyhow!("the batch failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_wide_failures_keep_their_code_for_every_caller() {
        let busy = AppError::Database(DbErr::ConnectionAcquire(
            sea_orm::error::ConnAcquireErr::Timeout,
        ));
        assert_eq!(shared(&busy).code(), "SERVER_BUSY");
        assert_eq!(shared(&AppError::NotFound("tier")).code(), "NOT_FOUND");
        assert_eq!(
            shared(&AppError::Internal(anyhow::anyhow!("boom"))).code(),
            "INTERNAL_SERVER_ERROR"
        );
    }

    #[tokio::test]
    async fn a_lane_serves_what_waits_as_one_batch_in_arrival_order() {
        let lanes: Arc<Lanes<(u32, tokio::sync::oneshot::Sender<usize>)>> = Lanes::new();
        let id = Uuid::new_v4();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut answers = Vec::new();
        for n in 0..5 {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let seen = Arc::clone(&seen);
            lanes
                .submit(id, (n, reply), move |batch| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let size = batch.len();
                        for (n, reply) in batch {
                            seen.lock().expect("not poisoned").push(n);
                            let _ = reply.send(size);
                        }
                    }
                })
                .await
                .expect("queued");
            answers.push(answer);
        }
        let sizes: Vec<usize> = futures::future::join_all(answers)
            .await
            .into_iter()
            .map(|size| size.expect("answered"))
            .collect();
        // The lane task had not run before all five were queued (single-threaded test runtime).
        assert_eq!(sizes, vec![5; 5]);
        assert_eq!(*seen.lock().expect("not poisoned"), vec![0, 1, 2, 3, 4]);
        assert_eq!(
            lanes.stats(),
            CoalescingStats {
                batches: 1,
                requests: 5
            }
        );
    }
}

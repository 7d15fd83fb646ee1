//! Lanes: work that many callers need on one row, done once for all who are waiting.
//!
//! A lane is a FIFO queue per id (a tier, an event) served by one task, which takes everything waiting
//! as one batch and answers each request on its own reply channel. Lanes start on demand and stop
//! after a while without work. A batch may leave a [`Tail`] (the part that need not go in arrival
//! order), which runs beside the lane's next batches. Coalesced booking and best-available holds
//! (`booking::lanes` has their batch plumbing) and the event reads of subscribers use lanes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration as StdDuration, Instant};

use sea_orm::DbErr;
use sea_orm::error::ConnAcquireErr;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// The most requests one batch takes; more wait for the next one. Bounds statement size and the time a
/// batch holds its locks.
pub(crate) const MAX_BATCH: usize = 512;
/// Requests that may wait on one lane before callers wait to enqueue.
const LANE_DEPTH: usize = 8192;
/// Batches of one lane whose [`Tail`] may still be running while the lane serves the next one.
const PIPELINE_DEPTH: usize = 4;
/// A lane with nothing to do for this long stops; the next request starts a new one.
const LANE_IDLE: StdDuration = StdDuration::from_secs(30);

/// What serving a batch leaves to finish after the part that must go in arrival order (the payments
/// and orders of a batch whose stock is already allocated): it runs beside the lane's next batches, at
/// most [`PIPELINE_DEPTH`] at once, and answers its callers itself.
pub(crate) type Tail = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The running lanes of one kind, by the id of what they serialise on.
pub(crate) struct Lanes<R> {
    running: Mutex<HashMap<Uuid, mpsc::Sender<R>>>,
    batches: AtomicU64,
    requests: AtomicU64,
    busy_micros: AtomicU64,
}

/// How much coalescing happened since start.
#[derive(Debug, Clone, Copy)]
pub struct CoalescingStats {
    pub batches: u64,
    pub requests: u64,
    /// Time spent serving batches: near the elapsed time, the lanes are the bottleneck.
    pub busy: StdDuration,
}

impl<R: Send + 'static> Lanes<R> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::new(HashMap::new()),
            batches: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            busy_micros: AtomicU64::new(0),
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
        Fut: Future<Output = Option<Tail>> + Send + 'static,
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
        Fut: Future<Output = Option<Tail>> + Send + 'static,
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
            busy: StdDuration::from_micros(self.busy_micros.load(Ordering::Relaxed)),
        }
    }

    fn lane<F, Fut>(self: &Arc<Self>, id: Uuid, serve: &mut Option<F>) -> AppResult<mpsc::Sender<R>>
    where
        F: Fn(Vec<R>) -> Fut + Send + 'static,
        Fut: Future<Output = Option<Tail>> + Send + 'static,
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
        Fut: Future<Output = Option<Tail>>,
    {
        let tails = Arc::new(Semaphore::new(PIPELINE_DEPTH));
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
                        let tail = self.counted(rest.len(), serve(rest)).await;
                        pipeline(&tails, tail).await;
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
            let tail = self.counted(batch.len(), serve(batch)).await;
            pipeline(&tails, tail).await;
        }
    }

    async fn counted(
        &self,
        requests: usize,
        serving: impl Future<Output = Option<Tail>>,
    ) -> Option<Tail> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(requests as u64, Ordering::Relaxed);
        let started = Instant::now();
        let tail = serving.await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
        tail
    }
}

/// Starts a batch's tail beside the lane, first waiting while [`PIPELINE_DEPTH`] tails still run.
async fn pipeline(tails: &Arc<Semaphore>, tail: Option<Tail>) {
    let Some(tail) = tail else { return };
    match Arc::clone(tails).acquire_owned().await {
        Ok(permit) => {
            tokio::spawn(async move {
                tail.await;
                drop(permit);
            });
        }
        // Never closed; were it, running the tail in line still answers everyone.
        Err(_closed) => tail.await,
    }
}

/// A failure of work done for many callers at once (a batch, a shared read), as told to each of them:
/// the codes a caller can act on keep their code, anything else is an internal error.
pub(crate) fn shared(err: &AppError) -> AppError {
    match err {
        AppError::NotFound(what) => AppError::NotFound(what),
        AppError::BadUserInput(message) => AppError::BadUserInput(message.clone()),
        AppError::Conflict(message) => AppError::Conflict(message.clone()),
        AppError::SoldOut(message) => AppError::SoldOut(message.clone()),
        AppError::Database(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)) => {
            AppError::Database(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))
        }
        other => AppError::Internal(anyhow::anyhow!("the batch failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_wide_failures_keep_their_code_for_every_caller() {
        let busy = AppError::Database(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout));
        assert_eq!(shared(&busy).code(), "SERVER_BUSY");
        let closed = AppError::Database(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed));
        assert_eq!(shared(&closed).code(), "INTERNAL_SERVER_ERROR");
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
                        None
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
        let stats = lanes.stats();
        assert_eq!((stats.batches, stats.requests), (1, 5));
    }

    /// Waits (up to two seconds) until `served` reaches `count`.
    async fn served_reaches(served: &AtomicU64, count: u64) -> bool {
        for _ in 0..2000 {
            if served.load(Ordering::SeqCst) >= count {
                return true;
            }
            tokio::time::sleep(StdDuration::from_millis(1)).await;
        }
        false
    }

    /// Queues one request on the lane of `id`; its answer comes on the receiver.
    async fn queue_one<F, Fut>(
        lanes: &Arc<Lanes<oneshot::Sender<()>>>,
        id: Uuid,
        serve: F,
    ) -> oneshot::Receiver<()>
    where
        F: Fn(Vec<oneshot::Sender<()>>) -> Fut + Send + 'static,
        Fut: Future<Output = Option<Tail>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        lanes.submit(id, reply, serve).await.expect("queued");
        answer
    }

    #[tokio::test]
    async fn a_lane_serves_the_next_batch_while_tails_run_but_never_more_tails_than_its_depth() {
        let lanes: Arc<Lanes<oneshot::Sender<()>>> = Lanes::new();
        let id = Uuid::new_v4();
        // Tails finish only when a permit is added here.
        let release = Arc::new(Semaphore::new(0));
        let served = Arc::new(AtomicU64::new(0));
        let serve = {
            let (release, served) = (Arc::clone(&release), Arc::clone(&served));
            move |batch: Vec<oneshot::Sender<()>>| {
                let (release, served) = (Arc::clone(&release), Arc::clone(&served));
                async move {
                    served.fetch_add(1, Ordering::SeqCst);
                    let tail: Tail = Box::pin(async move {
                        if let Ok(permit) = release.acquire().await {
                            permit.forget();
                        }
                        for reply in batch {
                            let _ = reply.send(());
                        }
                    });
                    Some(tail)
                }
            }
        };
        let mut answers = Vec::new();
        // Each request is its own batch: the next is sent once the previous was served.
        for n in 1..=PIPELINE_DEPTH as u64 + 1 {
            answers.push(queue_one(&lanes, id, serve.clone()).await);
            assert!(
                served_reaches(&served, n).await,
                "batch {n} is served while {} tails run",
                n - 1
            );
        }
        // The last batch's tail waits for a free place: the lane takes nothing new meanwhile.
        answers.push(queue_one(&lanes, id, serve.clone()).await);
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        assert_eq!(served.load(Ordering::SeqCst), PIPELINE_DEPTH as u64 + 1);
        release.add_permits(1);
        assert!(served_reaches(&served, PIPELINE_DEPTH as u64 + 2).await);
        release.add_permits(answers.len());
        for answer in answers {
            tokio::time::timeout(StdDuration::from_secs(2), answer)
                .await
                .expect("every tail answers")
                .expect("answered");
        }
    }
}

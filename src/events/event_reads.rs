//! The event row a crowd of new subscribers needs at the same moment, read once for all of them.
//!
//! Every subscription first checks that its viewer may see the event, which takes the event's row.
//! Read once per subscriber, a crowd of thousands connecting together queued thousands of identical
//! queries on a pool of a few dozen connections, and whoever was still queued when the acquire timeout
//! passed was refused with SERVER_BUSY. Here the readers of one event form a lane: one read at a time
//! per event, answering everybody who asked before it started. A caller's answer therefore always
//! comes from a read that began after it asked, never from an older one, so a subscription refused
//! because the event was just unpublished cannot slip through on a stale row; and the number of
//! queries follows the number of database round trips, not the number of subscribers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use entity::event;
use entity::prelude::*;
use sea_orm::error::ConnAcquireErr;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// What one read tells every caller it answers. The database error itself is logged once by the
/// lane; callers get its class, which is all their error code depends on.
#[derive(Clone)]
enum Outcome {
    Found(Arc<event::Model>),
    Missing,
    Busy,
    Failed,
}

type Reply = oneshot::Sender<Outcome>;

/// Event rows read on behalf of many callers at once; cheap to clone.
#[derive(Clone)]
pub struct EventReads {
    db: DatabaseConnection,
    /// The queue of each event that has a lane running. A lane removes itself, under this lock, once
    /// its queue is empty, so a caller that finds an entry may always send to it.
    lanes: Arc<Mutex<HashMap<Uuid, mpsc::UnboundedSender<Reply>>>>,
}

impl EventReads {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            lanes: Arc::default(),
        }
    }

    /// The event's row as read after this call began, or `None` when there is no such event.
    pub async fn find(&self, event_id: Uuid) -> AppResult<Option<event::Model>> {
        let (reply, answer) = oneshot::channel();
        {
            let mut lanes = lock(&self.lanes);
            let queued = match lanes.get(&event_id) {
                Some(queue) => queue.send(reply).map_err(|unsent| unsent.0),
                None => Err(reply),
            };
            if let Err(reply) = queued {
                let (queue, waiting) = mpsc::unbounded_channel();
                // The receiver is alive: it was created on the line above.
                let _ = queue.send(reply);
                lanes.insert(event_id, queue);
                tokio::spawn(run_lane(
                    self.db.clone(),
                    event_id,
                    waiting,
                    Arc::clone(&self.lanes),
                ));
            }
        }
        match answer.await {
            Ok(Outcome::Found(event)) => Ok(Some(Arc::unwrap_or_clone(event))),
            Ok(Outcome::Missing) => Ok(None),
            Ok(Outcome::Busy) => Err(AppError::Database(DbErr::ConnectionAcquire(
                ConnAcquireErr::Timeout,
            ))),
            Ok(Outcome::Failed) | Err(_) => Err(AppError::Internal(anyhow::anyhow!(
                "reading the event failed"
            ))),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads the event for everybody queued, again and again, until nobody is.
async fn run_lane(
    db: DatabaseConnection,
    event_id: Uuid,
    mut queue: mpsc::UnboundedReceiver<Reply>,
    lanes: Arc<Mutex<HashMap<Uuid, mpsc::UnboundedSender<Reply>>>>,
) {
    let mut waiting = Vec::new();
    loop {
        while let Ok(reply) = queue.try_recv() {
            waiting.push(reply);
        }
        if waiting.is_empty() {
            let mut lanes = lock(&lanes);
            // Callers send while holding this lock: with the queue still empty under it, nobody
            // can be left waiting on a lane that is gone.
            match queue.try_recv() {
                Ok(reply) => waiting.push(reply),
                Err(_) => {
                    lanes.remove(&event_id);
                    return;
                }
            }
        }
        let outcome = match Event::find_by_id(event_id).one(&db).await {
            Ok(Some(event)) => Outcome::Found(Arc::new(event)),
            Ok(None) => Outcome::Missing,
            Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)) => Outcome::Busy,
            Err(err) => {
                tracing::error!(event.id = %event_id, error = %err, "reading the event failed");
                Outcome::Failed
            }
        };
        for reply in waiting.drain(..) {
            // A caller that went away no longer needs its answer.
            let _ = reply.send(outcome.clone());
        }
    }
}

//! The event row a crowd of new subscribers needs at the same moment, read once for all of them.
//!
//! Every subscription first checks that its viewer may see the event, which takes the event's row.
//! Read once per subscriber, a crowd of thousands connecting together queued thousands of identical
//! queries on a pool of a few dozen connections, and whoever was still queued when the acquire timeout
//! passed was refused with SERVER_BUSY. Here the readers of one event queue on a lane (`crate::lanes`):
//! one read at a time per event, answering everybody who asked before it started. A caller's answer
//! therefore always comes from a read that began after it asked, never from an older one, so a
//! subscription refused because the event was just unpublished cannot slip through on a stale row; and
//! the number of queries follows the number of database round trips, not the number of subscribers.

use std::sync::Arc;

use entity::event;
use entity::prelude::*;
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::error::AppResult;
use crate::lanes::{Lanes, shared};

type Reply = oneshot::Sender<AppResult<Option<Arc<event::Model>>>>;

/// Event rows read on behalf of many callers at once; cheap to clone.
#[derive(Clone)]
pub struct EventReads {
    db: DatabaseConnection,
    lanes: Arc<Lanes<Reply>>,
}

impl EventReads {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            lanes: Lanes::new(),
        }
    }

    /// The event's row as read after this call began, or `None` when there is no such event.
    pub async fn find(&self, event_id: Uuid) -> AppResult<Option<event::Model>> {
        let db = self.db.clone();
        let found = self
            .lanes
            .ask(
                event_id,
                |reply| reply,
                move |waiting: Vec<Reply>| {
                    let db = db.clone();
                    async move {
                        let read = Event::find_by_id(event_id).one(&db).await;
                        let read = read.map(|found| found.map(Arc::new)).map_err(Into::into);
                        for reply in waiting {
                            // A caller that went away no longer needs its answer.
                            let _ = reply.send(read.as_ref().map(Clone::clone).map_err(shared));
                        }
                        None
                    }
                },
            )
            .await?;
        Ok(found.map(Arc::unwrap_or_clone))
    }
}

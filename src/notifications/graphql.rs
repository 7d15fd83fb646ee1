use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Json, Object, Result, ResultExt, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use entity::notification;
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::auth::guards::RoleGuard;
use crate::gql::{ContextExt, page_size, parse_id};
use crate::live::LiveMessage;
use crate::notifications::service;

/// Something the user should know: an event cancelled, a hold about to expire, a waitlist offer.
#[derive(SimpleObject, Clone)]
pub struct Notification {
    pub id: ID,
    /// Machine-readable kind, e.g. `event_cancelled`.
    pub kind: String,
    pub title: String,
    pub body: String,
    /// Ids and details for the client to link to.
    pub data: Option<Json<serde_json::Value>>,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<notification::Model> for Notification {
    fn from(model: notification::Model) -> Self {
        Self {
            id: ID(model.id.to_string()),
            kind: model.kind,
            title: model.title,
            body: model.body,
            data: model.data.map(Json),
            read_at: model.read_at,
            created_at: model.created_at,
        }
    }
}

/// Extra fields of the notifications connection.
#[derive(SimpleObject)]
pub struct NotificationCounts {
    /// Unread notifications in all (not only this page).
    pub unread_count: i64,
}

#[derive(Default)]
pub struct NotificationQuery;

#[Object]
impl NotificationQuery {
    /// The signed-in user's notifications, newest first, with the unread count.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn my_notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] unread_only: bool,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last notification of the previous page.")] after: Option<
            String,
        >,
    ) -> Result<Connection<String, Notification, NotificationCounts>> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let limit = page_size(first).extend()?;
        let after = after
            .map(|cursor| parse_id(&ID(cursor), "after"))
            .transpose()
            .extend()?;
        let mut rows = service::list(&state.db, viewer.user_id, unread_only, after, limit + 1)
            .await
            .extend()?;
        let unread = service::unread_count(&state.db, viewer.user_id)
            .await
            .extend()?;
        let has_next_page = rows.len() > limit;
        rows.truncate(limit);
        let mut connection = Connection::with_additional_fields(
            after.is_some(),
            has_next_page,
            NotificationCounts {
                unread_count: i64::try_from(unread).unwrap_or(i64::MAX),
            },
        );
        connection.edges.extend(
            rows.into_iter()
                .map(|n| Edge::new(n.id.to_string(), Notification::from(n))),
        );
        Ok(connection)
    }
}

#[derive(Default)]
pub struct NotificationMutation;

#[Object]
impl NotificationMutation {
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn mark_notification_read(&self, ctx: &Context<'_>, id: ID) -> Result<Notification> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&id, "id").extend()?;
        Ok(
            service::mark_read(&state.db, viewer.user_id, id, Utc::now())
                .await
                .extend()?
                .into(),
        )
    }

    /// Marks every unread notification read; returns how many there were.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn mark_all_notifications_read(&self, ctx: &Context<'_>) -> Result<i64> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let marked = service::mark_all_read(&state.db, viewer.user_id, Utc::now())
            .await
            .extend()?;
        Ok(i64::try_from(marked).unwrap_or(i64::MAX))
    }
}

#[derive(Default)]
pub struct NotificationSubscription;

#[Subscription]
impl NotificationSubscription {
    /// The signed-in user's new notifications as they arrive. Authenticate in `connection_init`;
    /// without a token this is UNAUTHENTICATED.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn my_notifications(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Notification> + use<>> {
        let state = ctx.state().extend()?;
        let user_id: Uuid = ctx.viewer().extend()?.user_id;
        let mut messages = state.bus.subscribe();
        let db = state.db.clone();
        let mut last = service::newest_id(&db, user_id).await.extend()?;
        Ok(async_stream::stream! {
            loop {
                match messages.recv().await {
                    Ok(LiveMessage::NotificationsChanged { user_id: changed }) if changed == user_id => {}
                    Ok(LiveMessage::Resync) | Err(RecvError::Lagged(_)) => {}
                    Ok(_) => continue,
                    Err(RecvError::Closed) => break,
                }
                let Ok(fresh) = service::newer_than(&db, user_id, last).await else {
                    break;
                };
                for notification in fresh {
                    last = Some(notification.id);
                    yield Notification::from(notification);
                }
            }
        })
    }
}

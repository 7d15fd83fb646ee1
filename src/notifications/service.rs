use chrono::{DateTime, Utc};
use entity::notification;
use entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Stores a notification for `user_id` in the caller's transaction.
pub async fn notify(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    kind: &str,
    title: &str,
    body: &str,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> AppResult<notification::Model> {
    Ok(notification::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        kind: Set(kind.to_owned()),
        title: Set(title.to_owned()),
        body: Set(body.to_owned()),
        data: Set(Some(data)),
        read_at: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await?)
}

/// The user's notifications, newest first, `limit` of them after the cursor id (ids are time-ordered).
pub async fn list(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    unread_only: bool,
    after: Option<Uuid>,
    limit: usize,
) -> AppResult<Vec<notification::Model>> {
    let mut query = Notification::find()
        .filter(notification::Column::UserId.eq(user_id))
        .order_by_desc(notification::Column::Id)
        .limit(limit as u64);
    if unread_only {
        query = query.filter(notification::Column::ReadAt.is_null());
    }
    if let Some(after) = after {
        query = query.filter(notification::Column::Id.lt(after));
    }
    Ok(query.all(db).await?)
}

/// Notifications newer than `after` (all if `None`), oldest first: what a live subscriber has not seen.
pub async fn newer_than(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    after: Option<Uuid>,
) -> AppResult<Vec<notification::Model>> {
    let mut query = Notification::find()
        .filter(notification::Column::UserId.eq(user_id))
        .order_by_asc(notification::Column::Id)
        .limit(100);
    if let Some(after) = after {
        query = query.filter(notification::Column::Id.gt(after));
    }
    Ok(query.all(db).await?)
}

/// The newest notification id of the user, where a live subscription starts from.
pub async fn newest_id(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Option<Uuid>> {
    Ok(Notification::find()
        .filter(notification::Column::UserId.eq(user_id))
        .order_by_desc(notification::Column::Id)
        .one(db)
        .await?
        .map(|n| n.id))
}

pub async fn unread_count(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<u64> {
    Ok(Notification::find()
        .filter(notification::Column::UserId.eq(user_id))
        .filter(notification::Column::ReadAt.is_null())
        .count(db)
        .await?)
}

/// Marks one of the user's notifications read (idempotent); another user's is NOT_FOUND.
pub async fn mark_read(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<notification::Model> {
    let found = Notification::find_by_id(id)
        .filter(notification::Column::UserId.eq(user_id))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("notification"))?;
    if found.read_at.is_some() {
        return Ok(found);
    }
    let mut active: notification::ActiveModel = found.into();
    active.read_at = Set(Some(now));
    Ok(active.update(db).await?)
}

/// Marks every unread notification of the user read; returns how many changed.
pub async fn mark_all_read(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    Ok(Notification::update_many()
        .col_expr(notification::Column::ReadAt, Expr::value(now))
        .filter(notification::Column::UserId.eq(user_id))
        .filter(notification::Column::ReadAt.is_null())
        .exec(db)
        .await?
        .rows_affected)
}

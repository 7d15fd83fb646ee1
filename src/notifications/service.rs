use chrono::{DateTime, Utc};
use entity::notification;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use uuid::Uuid;

use crate::error::AppResult;

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

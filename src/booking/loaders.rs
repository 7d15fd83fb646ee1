use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::seat;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::booking::service;
use crate::error::AppError;

/// The seats of holds with their tiers, in row and seat order (none for a GA hold or an ended one).
pub struct SeatsByHoldLoader(pub DatabaseConnection);

impl Loader<Uuid> for SeatsByHoldLoader {
    type Value = Vec<(seat::Model, Uuid)>;
    type Error = Arc<AppError>;

    async fn load(&self, hold_ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        Ok(service::seats_of_holds(&self.0, hold_ids).await?)
    }
}

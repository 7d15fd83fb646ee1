use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use entity::{section, venue};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::error::AppError;
use crate::venues::service;

pub struct VenueByIdLoader(pub DatabaseConnection);

impl Loader<Uuid> for VenueByIdLoader {
    type Value = venue::Model;
    type Error = std::sync::Arc<AppError>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let venues = service::venues_by_ids(&self.0, ids).await?;
        Ok(venues.into_iter().map(|venue| (venue.id, venue)).collect())
    }
}

pub struct SectionsByVenueLoader(pub DatabaseConnection);

impl Loader<Uuid> for SectionsByVenueLoader {
    type Value = Vec<section::Model>;
    type Error = std::sync::Arc<AppError>;

    async fn load(&self, venue_ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut by_venue: HashMap<Uuid, Vec<section::Model>> = HashMap::new();
        for section in service::sections_of_venues(&self.0, venue_ids).await? {
            by_venue.entry(section.venue_id).or_default().push(section);
        }
        Ok(by_venue)
    }
}

pub struct SeatByIdLoader(pub DatabaseConnection);

impl Loader<Uuid> for SeatByIdLoader {
    type Value = entity::seat::Model;
    type Error = std::sync::Arc<AppError>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let seats = entity::prelude::Seat::find()
            .filter(entity::seat::Column::Id.is_in(ids.iter().copied()))
            .all(&self.0)
            .await
            .map_err(AppError::from)?;
        Ok(seats.into_iter().map(|seat| (seat.id, seat)).collect())
    }
}

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::ticket_tier;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::error::AppError;
use crate::events::service::{self, SectionAvailability};

pub struct TiersByEventLoader(pub DatabaseConnection);

impl Loader<Uuid> for TiersByEventLoader {
    type Value = Vec<ticket_tier::Model>;
    type Error = Arc<AppError>;

    async fn load(&self, event_ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut by_event: HashMap<Uuid, Vec<ticket_tier::Model>> = HashMap::new();
        for tier in service::tiers_of_events(&self.0, event_ids).await? {
            by_event.entry(tier.event_id).or_default().push(tier);
        }
        Ok(by_event)
    }
}

pub struct SectionAvailabilityByEventLoader(pub DatabaseConnection);

impl Loader<Uuid> for SectionAvailabilityByEventLoader {
    type Value = Vec<SectionAvailability>;
    type Error = Arc<AppError>;

    async fn load(&self, event_ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut by_event: HashMap<Uuid, Vec<SectionAvailability>> = HashMap::new();
        for row in service::section_availability(&self.0, event_ids).await? {
            by_event.entry(row.event_id).or_default().push(row);
        }
        Ok(by_event)
    }
}

pub struct EventByIdLoader(pub DatabaseConnection);

impl Loader<Uuid> for EventByIdLoader {
    type Value = entity::event::Model;
    type Error = Arc<AppError>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let events = entity::prelude::Event::find()
            .filter(entity::event::Column::Id.is_in(ids.iter().copied()))
            .all(&self.0)
            .await
            .map_err(AppError::from)?;
        Ok(events.into_iter().map(|event| (event.id, event)).collect())
    }
}

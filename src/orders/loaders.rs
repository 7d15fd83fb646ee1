use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::{order_line, ticket};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::error::AppError;
use crate::orders::service;

pub struct TicketsByOrderLoader(pub DatabaseConnection);

impl Loader<Uuid> for TicketsByOrderLoader {
    type Value = Vec<ticket::Model>;
    type Error = Arc<AppError>;

    async fn load(&self, order_ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut by_order: HashMap<Uuid, Vec<ticket::Model>> = HashMap::new();
        for ticket in service::tickets_of_orders(&self.0, order_ids).await? {
            by_order.entry(ticket.order_id).or_default().push(ticket);
        }
        Ok(by_order)
    }
}

pub struct LinesByOrderLoader(pub DatabaseConnection);

impl Loader<Uuid> for LinesByOrderLoader {
    type Value = Vec<order_line::Model>;
    type Error = Arc<AppError>;

    async fn load(&self, order_ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut by_order: HashMap<Uuid, Vec<order_line::Model>> = HashMap::new();
        for line in service::lines_of_orders(&self.0, order_ids).await? {
            by_order.entry(line.order_id).or_default().push(line);
        }
        Ok(by_order)
    }
}

use async_graphql::connection::{Connection, Edge};
use async_graphql::{
    ComplexObject, Context, Enum, ErrorExtensions, ID, Object, Result, ResultExt, SimpleObject,
};
use entity::{section, venue};

use crate::gql::{ContextExt, Cursor, page_size, parse_id};
use crate::venues::loaders::SectionsByVenueLoader;
use crate::venues::service;

/// A place where events happen, with its sections and seats.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Venue {
    pub id: ID,
    pub name: String,
    pub city: String,
    pub address: String,
    /// IANA time zone of the venue, for showing local start times.
    pub timezone: String,
    pub description: Option<String>,
    #[graphql(skip)]
    pub uuid: uuid::Uuid,
}

impl From<venue::Model> for Venue {
    fn from(model: venue::Model) -> Self {
        Self {
            id: ID(model.id.to_string()),
            name: model.name,
            city: model.city,
            address: model.address,
            timezone: model.timezone,
            description: model.description,
            uuid: model.id,
        }
    }
}

#[ComplexObject]
impl Venue {
    /// Sections in drawing order.
    async fn sections(&self, ctx: &Context<'_>) -> Result<Vec<Section>> {
        let sections = ctx
            .loader::<SectionsByVenueLoader>()
            .extend()?
            .load_one(self.uuid)
            .await
            .map_err(|err| err.extend())?
            .unwrap_or_default();
        Ok(sections.into_iter().map(Section::from).collect())
    }

    /// Total capacity: seats of reserved sections plus standing room of general-admission sections.
    async fn capacity(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(self.sections(ctx).await?.iter().map(|s| s.capacity).sum())
    }
}

/// Whether a section has numbered seats or standing room.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::SectionKind")]
pub enum SectionKind {
    /// Numbered seats, sold individually.
    Reserved,
    /// Standing room, sold by count.
    GeneralAdmission,
}

/// A part of a venue: a block of numbered seats or a standing area.
#[derive(SimpleObject, Clone)]
pub struct Section {
    pub id: ID,
    pub name: String,
    pub kind: SectionKind,
    /// Seats in a reserved section, standing places in a general-admission one.
    pub capacity: i32,
    /// Position of the section on the venue drawing.
    pub x: f64,
    pub y: f64,
}

impl From<section::Model> for Section {
    fn from(model: section::Model) -> Self {
        Self {
            id: ID(model.id.to_string()),
            name: model.name,
            kind: model.kind.into(),
            capacity: model.capacity,
            x: model.x,
            y: model.y,
        }
    }
}

#[derive(Default)]
pub struct VenueQuery;

#[Object]
impl VenueQuery {
    /// Venues ordered by name.
    async fn venues(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last venue of the previous page.")] after: Option<String>,
    ) -> Result<Connection<String, Venue>> {
        let state = ctx.state().extend()?;
        let limit = page_size(first).extend()?;
        let after = after.as_deref().map(Cursor::decode).transpose().extend()?;
        let mut rows = service::list_venues(&state.db, after.as_ref(), limit + 1)
            .await
            .extend()?;
        let has_next_page = rows.len() > limit;
        rows.truncate(limit);
        let mut connection = Connection::new(after.is_some(), has_next_page);
        connection.edges.extend(rows.into_iter().map(|venue| {
            let cursor = Cursor::new(venue.name.clone(), venue.id).encode();
            Edge::new(cursor, Venue::from(venue))
        }));
        Ok(connection)
    }

    /// One venue by id; NOT_FOUND if there is none.
    async fn venue(&self, ctx: &Context<'_>, id: ID) -> Result<Venue> {
        let state = ctx.state().extend()?;
        let id = parse_id(&id, "id").extend()?;
        Ok(service::find_venue(&state.db, id).await.extend()?.into())
    }
}

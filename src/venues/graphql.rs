use async_graphql::connection::{Connection, Edge};
use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, Object, Result, ResultExt, SimpleObject,
};
use entity::{section, venue};

use crate::auth::guards::RoleGuard;
use crate::error::{AppError, AppResult};
use crate::gql::{ContextExt, Cursor, load_one, page_size, parse_id};
use crate::venues::layout::{GridLayout, MAX_ROWS, MAX_SEATS_PER_ROW, SeatSpec};
use crate::venues::loaders::SectionsByVenueLoader;
use crate::venues::service;
use crate::venues::service::{NewSection, NewVenue};

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
        let sections = load_one(ctx, SectionsByVenueLoader, self.uuid)
            .await?
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

    /// Venues the signed-in organizer owns. ORGANIZER.
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn my_venues(&self, ctx: &Context<'_>) -> Result<Vec<Venue>> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        Ok(service::list_managed_venues(&state.db, viewer)
            .await
            .extend()?
            .into_iter()
            .map(Venue::from)
            .collect())
    }

    /// One venue by id; NOT_FOUND if there is none.
    async fn venue(&self, ctx: &Context<'_>, id: ID) -> Result<Venue> {
        let state = ctx.state().extend()?;
        let id = parse_id(&id, "id").extend()?;
        Ok(service::find_venue(&state.db, id).await.extend()?.into())
    }
}

/// A new venue with its sections.
#[derive(InputObject)]
pub struct CreateVenueInput {
    pub name: String,
    pub city: String,
    pub address: String,
    /// IANA time zone, e.g. `Europe/Paris` (default `UTC`).
    #[graphql(default_with = "\"UTC\".to_owned()")]
    pub timezone: String,
    pub description: Option<String>,
    /// 1 to 200 sections; the first is nearest the stage in listings.
    pub sections: Vec<SectionInput>,
}

/// A section: standing room with a capacity, or reserved seats from a grid or an explicit list.
#[derive(InputObject)]
pub struct SectionInput {
    pub name: String,
    pub kind: SectionKind,
    /// Places in a general-admission section.
    pub standing_capacity: Option<i32>,
    /// Position of the section (the centre of its front row) on the venue drawing.
    #[graphql(default)]
    pub x: f64,
    #[graphql(default)]
    pub y: f64,
    /// Generates rows x seats per row, placed from (x, y).
    pub grid: Option<SeatGridInput>,
    /// Explicit seats, for irregular layouts. Rows are ranked front to back in order of appearance.
    pub seats: Option<Vec<SeatInput>>,
}

/// A rectangular block of seats.
#[derive(InputObject)]
pub struct SeatGridInput {
    /// 1 to 200 rows, labelled A, B, ... Z, AA, ...
    pub rows: i32,
    /// 1 to 200 seats per row, numbered from 1.
    pub seats_per_row: i32,
    /// Direction rows recede from the stage, in degrees (0 = right, 90 = down the drawing).
    #[graphql(default = 90.0)]
    pub facing_degrees: f64,
    #[graphql(default = 1.0)]
    pub seat_spacing: f64,
    #[graphql(default = 1.0)]
    pub row_spacing: f64,
}

/// One seat of an explicit layout.
#[derive(InputObject)]
pub struct SeatInput {
    pub row: String,
    pub number: i32,
    pub x: f64,
    pub y: f64,
    #[graphql(default)]
    pub accessible: bool,
}

impl SectionInput {
    fn into_new_section(self) -> AppResult<NewSection> {
        let kind: entity::enums::SectionKind = self.kind.into();
        let seats = match (kind, self.grid, self.seats) {
            (entity::enums::SectionKind::GeneralAdmission, None, None) => Vec::new(),
            (entity::enums::SectionKind::GeneralAdmission, _, _) => {
                return Err(AppError::bad_input(
                    "a general-admission section has no seats",
                ));
            }
            (_, Some(grid), None) => grid_seats(&grid, (self.x, self.y))?,
            (_, None, Some(seats)) => explicit_seats(seats),
            (_, _, _) => {
                return Err(AppError::bad_input(
                    "a reserved section needs either a grid or a seat list",
                ));
            }
        };
        Ok(NewSection {
            name: self.name,
            kind,
            standing_capacity: self.standing_capacity.unwrap_or(0),
            position: (self.x, self.y),
            seats,
        })
    }
}

fn grid_seats(grid: &SeatGridInput, origin: (f64, f64)) -> AppResult<Vec<SeatSpec>> {
    let rows = u32::try_from(grid.rows)
        .ok()
        .filter(|r| (1..=MAX_ROWS).contains(r));
    let per_row = u32::try_from(grid.seats_per_row)
        .ok()
        .filter(|s| (1..=MAX_SEATS_PER_ROW).contains(s));
    let (Some(rows), Some(seats_per_row)) = (rows, per_row) else {
        return Err(AppError::bad_input(format!(
            "a grid has 1 to {MAX_ROWS} rows of 1 to {MAX_SEATS_PER_ROW} seats"
        )));
    };
    if !grid.facing_degrees.is_finite()
        || !grid.seat_spacing.is_finite()
        || !grid.row_spacing.is_finite()
    {
        return Err(AppError::bad_input(
            "grid angles and spacings must be finite numbers",
        ));
    }
    Ok(GridLayout {
        rows,
        seats_per_row,
        origin,
        facing_degrees: grid.facing_degrees,
        seat_spacing: grid.seat_spacing,
        row_spacing: grid.row_spacing,
    }
    .seats())
}

fn explicit_seats(seats: Vec<SeatInput>) -> Vec<SeatSpec> {
    let mut rows: Vec<String> = Vec::new();
    seats
        .into_iter()
        .map(|seat| {
            let row = seat.row.trim().to_owned();
            let row_index = match rows.iter().position(|r| *r == row) {
                Some(index) => index,
                None => {
                    rows.push(row.clone());
                    rows.len() - 1
                }
            };
            SeatSpec {
                row_label: row,
                row_index: row_index as i32,
                number: seat.number,
                x: seat.x,
                y: seat.y,
                accessible: seat.accessible,
            }
        })
        .collect()
}

#[derive(Default)]
pub struct VenueMutation;

#[Object]
impl VenueMutation {
    /// Creates a venue with its sections and seats. ORGANIZER; the venue is theirs to manage.
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn create_venue(&self, ctx: &Context<'_>, input: CreateVenueInput) -> Result<Venue> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let new = NewVenue {
            owner_id: viewer.user_id,
            name: input.name,
            city: input.city,
            address: input.address,
            timezone: input.timezone,
            description: input.description,
            sections: input
                .sections
                .into_iter()
                .map(SectionInput::into_new_section)
                .collect::<AppResult<_>>()
                .extend()?,
        };
        Ok(service::create_venue_in_transaction(&state.db, new)
            .await
            .extend()?
            .into())
    }
}

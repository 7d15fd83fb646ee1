use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE venues (
    id          {uuid} PRIMARY KEY,
    owner_id    {uuid} NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    city        TEXT NOT NULL,
    address     TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    description TEXT NULL,
    created_at  {ts} NOT NULL,
    updated_at  {ts} NOT NULL
);
CREATE INDEX venues_owner_idx ON venues (owner_id);

-- A section is either reserved seating (its seats are rows below) or a general-admission area
-- with a standing capacity. Position and size place it on the venue drawing.
CREATE TABLE sections (
    id         {uuid} PRIMARY KEY,
    venue_id   {uuid} NOT NULL REFERENCES venues (id) ON DELETE CASCADE,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind       TEXT NOT NULL CHECK (kind IN ('reserved', 'general_admission')),
    capacity   INTEGER NOT NULL CHECK (capacity >= 0),
    sort_order INTEGER NOT NULL,
    x          DOUBLE PRECISION NOT NULL,
    y          DOUBLE PRECISION NOT NULL,
    CONSTRAINT sections_venue_name_key UNIQUE (venue_id, name)
);

-- row_index counts from the front of the section (0 = nearest the stage): best-available ranks by it.
CREATE TABLE seats (
    id         {uuid} PRIMARY KEY,
    venue_id   {uuid} NOT NULL REFERENCES venues (id) ON DELETE CASCADE,
    section_id {uuid} NOT NULL REFERENCES sections (id) ON DELETE CASCADE,
    row_label  TEXT NOT NULL CHECK (length(row_label) BETWEEN 1 AND 10),
    row_index  INTEGER NOT NULL CHECK (row_index >= 0),
    number     INTEGER NOT NULL CHECK (number > 0),
    x          DOUBLE PRECISION NOT NULL,
    y          DOUBLE PRECISION NOT NULL,
    accessible BOOLEAN NOT NULL,
    CONSTRAINT seats_section_row_number_key UNIQUE (section_id, row_label, number)
);
CREATE INDEX seats_venue_idx ON seats (venue_id);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::drop_tables(manager, &["seats", "sections", "venues"]).await
    }
}

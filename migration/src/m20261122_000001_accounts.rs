use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE users (
    id            {uuid} PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role          TEXT NOT NULL CHECK (role IN ('customer', 'organizer', 'staff', 'admin')),
    -- Staff work the doors for one organizer's events.
    organizer_id  {uuid} NULL REFERENCES users (id) ON DELETE SET NULL,
    avatar_path   TEXT NULL,
    created_at    {ts} NOT NULL,
    updated_at    {ts} NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lowercase CHECK (email = lower(email))
);

-- Refresh tokens rotate: each use marks the row used and issues a sibling in the same family.
-- Presenting a used token again revokes the whole family (reuse detection).
CREATE TABLE refresh_tokens (
    id          {uuid} PRIMARY KEY,
    user_id     {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   {uuid} NOT NULL,
    token_hash  TEXT NOT NULL,
    expires_at  {ts} NOT NULL,
    used_at     {ts} NULL,
    revoked_at  {ts} NULL,
    created_at  {ts} NOT NULL,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::drop_tables(manager, &["refresh_tokens", "users"]).await
    }
}

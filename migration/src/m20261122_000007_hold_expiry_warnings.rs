use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

// When the sweeper warned the buyer that the hold is about to expire. The warning is claimed by a
// conditional UPDATE on this column, so with several sweepers each hold is warned once; extending a
// hold clears it so the new expiry gets its own warning.
const UP: &str = r#"
ALTER TABLE holds ADD COLUMN expiry_warned_at {ts} NULL;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, "ALTER TABLE holds DROP COLUMN expiry_warned_at").await
    }
}

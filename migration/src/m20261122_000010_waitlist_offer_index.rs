use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

// Ending or converting an offer hold closes its entry by `offered_hold_id`; without this index that
// update scans every waitlist entry.
const UP: &str = r#"
CREATE INDEX waitlist_entries_offered_hold_idx ON waitlist_entries (offered_hold_id)
    WHERE offered_hold_id IS NOT NULL;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, "DROP INDEX waitlist_entries_offered_hold_idx").await
    }
}

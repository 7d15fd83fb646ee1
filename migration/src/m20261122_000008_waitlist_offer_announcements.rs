use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

// Offers are made inside whichever transaction freed the stock; the sweeper then announces each new
// offer to its buyer once, claiming it with a conditional UPDATE of offer_announced_at.
const UP: &str = r#"
ALTER TABLE waitlist_entries ADD COLUMN offer_announced_at {ts} NULL;
CREATE INDEX waitlist_entries_unannounced_idx ON waitlist_entries (status)
    WHERE offer_announced_at IS NULL;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(
            manager,
            "DROP INDEX waitlist_entries_unannounced_idx; \
             ALTER TABLE waitlist_entries DROP COLUMN offer_announced_at",
        )
        .await
    }
}

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

// The sweeper looks for cancelled orders still owed a refund every few seconds; without this index
// that read scans every order, which during an on-sale costs more database time than the bookings.
const UP: &str = r#"
CREATE INDEX orders_refund_due_idx ON orders (cancelled_at)
    WHERE status = 'cancelled' AND refunded_cents < total_cents;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, "DROP INDEX orders_refund_due_idx").await
    }
}

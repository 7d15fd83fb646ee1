use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

// A ticket's order, event and tier are copies, written with it, of what its order line (order, tier)
// and that line's order (event) already reference under foreign keys; deleting an order still removes
// its tickets through `order_lines` (ON DELETE CASCADE twice). Checking the copies again cost three
// index probes per ticket, two of them `FOR KEY SHARE` locks on the event and tier rows every booking
// of an on-sale shares: dropping them took PostgreSQL's CPU per general-admission booking from
// 255-279 to 238-241 µs in alternated storms (docs/profiling.md). The columns stay, indexed, for
// reads by event and by order.
//
// SQLite changes a constraint only by rebuilding the table; it serialises writers anyway, so the
// embedded default keeps them.
const DROP: &str = "ALTER TABLE tickets
    DROP CONSTRAINT tickets_order_id_fkey,
    DROP CONSTRAINT tickets_event_id_fkey,
    DROP CONSTRAINT tickets_tier_id_fkey";

const RESTORE: &str = "ALTER TABLE tickets
    ADD CONSTRAINT tickets_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
    ADD CONSTRAINT tickets_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (id),
    ADD CONSTRAINT tickets_tier_id_fkey FOREIGN KEY (tier_id) REFERENCES ticket_tiers (id)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => ddl::run(manager, DROP).await,
            _ => Ok(()),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => ddl::run(manager, RESTORE).await,
            _ => Ok(()),
        }
    }
}

//! The state every request handler and resolver shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::db::StatementCounter;
use crate::live::Bus;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    /// Configuration the server started with.
    pub config: Arc<Config>,
    /// Connection pool (PostgreSQL, or one SQLite connection in embedded mode).
    pub db: DatabaseConnection,
    /// Live event bus (in-process, or Redis pub/sub across instances).
    pub bus: Bus,
    /// Statements executed since start, for tests and metrics.
    pub statements: Arc<StatementCounter>,
}

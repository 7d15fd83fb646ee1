use clap::{Parser, ValueEnum};

/// Storms a running Seat Storm server with buyers, then audits the books through the API and, given
/// `--database-url`, the database. Exits 1 on any violation.
#[derive(Parser, Debug, Clone)]
#[command(name = "ticket-war", version)]
pub struct Args {
    /// The server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// What buyers do: `ga` books general-admission tickets in one call; `best-available` holds the
    /// best seats then checks out; `hold-seats` holds random seats then checks out.
    #[arg(long, value_enum, default_value_t = Mode::Ga)]
    pub mode: Mode,
    /// General-admission capacity (ga mode).
    #[arg(long, default_value_t = 2000)]
    pub tickets: u64,
    /// Reserved rows and seats per row (seat modes).
    #[arg(long, default_value_t = 20)]
    pub rows: u32,
    #[arg(long, default_value_t = 50)]
    pub seats_per_row: u32,
    /// Tickets per booking (ga mode).
    #[arg(long, default_value_t = 1)]
    pub quantity: u32,
    /// Seats per hold, picked at random between these (seat modes).
    #[arg(long, default_value_t = 2)]
    pub min_group: u32,
    #[arg(long, default_value_t = 4)]
    pub max_group: u32,
    /// Seat modes: stop at the hold, no checkout (holds/s); the holds are left to expire. A confirmed
    /// attempt is then a hold, audited through the buyer's `myHolds`.
    #[arg(long)]
    pub hold_only: bool,
    /// Registered buyers (raised to the concurrency, and so no buyer needs more than 100 tickets).
    #[arg(long, default_value_t = 256)]
    pub buyers: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Open loop: start this many attempts per second whatever the answers (closed loop if unset).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Stop after this many attempts.
    #[arg(long)]
    pub max_attempts: Option<u64>,
    /// Keep going after the first SOLD_OUT until the time or attempt bound.
    #[arg(long)]
    pub keep_going: bool,
    /// WebSocket clients following the event live during the storm.
    #[arg(long, default_value_t = 0)]
    pub subscribers: usize,
    /// Subscribers connecting at once: each holds its slot from the connect until its first message
    /// (or failure), so the server sees a steady stream of new clients rather than one burst.
    #[arg(long, default_value_t = 32)]
    pub connect_concurrency: usize,
    /// Seat modes: subscribers take snapshots with every seat as an object and deltas as seat lists
    /// (`snapshotFormat: SEATS`, about 70 bytes per seat), not the compact `RUNS` snapshots and
    /// `statusChanges` deltas.
    #[arg(long)]
    pub full_snapshots: bool,
    /// Also audit the books in this database (the server's own).
    #[arg(long, env = "TICKET_WAR_DATABASE_URL")]
    pub database_url: Option<String>,
    #[arg(long, default_value = "organizer@seatstorm.dev")]
    pub organizer_email: String,
    #[arg(long, default_value = "seatstorm-organizer")]
    pub organizer_password: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ga,
    BestAvailable,
    HoldSeats,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ga => "ga",
            Self::BestAvailable => "best-available",
            Self::HoldSeats => "hold-seats",
        }
    }
}

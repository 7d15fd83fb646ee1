//! Typed configuration. This is the only module that reads environment variables.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `sqlite://seatstorm.db?mode=rwc` | PostgreSQL (`postgres://…`) or SQLite (`sqlite://…`) |
//! | `REDIS_URL` | unset: in-process event bus | Redis for live fan-out across instances |
//! | `REDIS_CHANNEL` | `seatstorm:live` | pub/sub channel shared by all instances of one deployment |
//! | `BIND_ADDR` | `127.0.0.1:8000` | where the HTTP server listens |
//! | `JWT_SECRET` | generated in embedded mode; required with PostgreSQL | HMAC key for access tokens, at least 32 bytes |
//! | `TICKET_SIGNING_SECRET` | `JWT_SECRET` | seed of the per-event Ed25519 keys that sign ticket QR codes (at least 32 bytes) |
//! | `ACCESS_TOKEN_TTL_MINUTES` | `15` | lifetime of an access token |
//! | `AVATAR_DIR` | `uploads/avatars` | where uploaded avatars are stored (served at `/avatars/`) |
//! | `CORS_ORIGINS` | unset: same origin only | comma-separated origins allowed to call the API, or `*` |
//! | `MUTATIONS_PER_MINUTE` | `120` | mutations one user may send per minute |
//! | `TRUST_FORWARDED_FOR` | `false` | take the client address from `X-Forwarded-For` (behind a proxy) |
//! | `HOLD_TTL_SECONDS` | `600` | how long a hold lasts |
//! | `HOLD_MAX_SECONDS` | `1800` | the longest a hold may live, extensions included |
//! | `HOLD_WARNING_SECONDS` | `120` | how long before expiry the buyer is warned (0: never) |
//! | `WAITLIST_CLAIM_SECONDS` | `1800` | how long a waitlist offer is held for its buyer |
//! | `QUEUE_PASS_SECONDS` | `600` | how long an admitted shopper's queue pass lasts |
//! | `QUEUE_OPENS_MINUTES` | `60` | how long before the on-sale a waiting room takes its pre-queue |
//! | `SWEEP_INTERVAL_MS` | `1000` | how often expired holds are released |
//! | `LIVE_COALESCE_MS` | `75` | how long live seat-map changes are gathered into one message |
//! | `BOOKING_PATH` | `coalesced` | `coalesced`: concurrent `bookTickets` of one tier, and `holdBestAvailable`, `holdSeats` and `checkout` of one event, share transactions; `simple`: one per request |
//! | `SEED_DEMO` | `true` | seed demo venues, events and accounts into an empty database |
//! | `DB_MAX_CONNECTIONS` | `32` (PostgreSQL), SQLite always uses one | connection pool size |
//! | `MAX_QUERY_DEPTH` | `12` | deepest GraphQL selection accepted |
//! | `MAX_QUERY_COMPLEXITY` | `2000` | largest GraphQL query complexity accepted |
//! | `MAX_TICKETS_PER_REQUEST` | `10` | most tickets or seats in one hold or booking |
//! | `WS_INIT_TIMEOUT_SECONDS` | `10` | time a WebSocket client has to send `connection_init` (then 4408) |
//! | `WS_KEEPALIVE_SECONDS` | `15` | interval of the server's WebSocket keep-alive pings |
//! | `WS_MAX_SUBSCRIPTIONS` | `50` | subscriptions per WebSocket connection |
//! | `WS_MAX_CONNECTIONS_PER_USER` | `20` | WebSocket connections per signed-in user, per instance (then 4429) |
//! | `WS_DIRECT_SEAT_MAPS` | `true` | serve plain `seatMapChanged` subscriptions without async-graphql's per-message execution (same messages; `false` to compare; off with `PERSISTED_QUERIES_ONLY` or limits below depth 2 / complexity 8) |
//! | `INTROSPECTION` | `true` | whether the schema answers introspection queries |
//! | `LOG_FORMAT` | `text` | `text` or `json` |
//! | `APQ_CACHE_SIZE` | `1000` | documents remembered for automatic persisted queries (0: off) |
//! | `PERSISTED_QUERIES_MANIFEST` | unset | JSON file of known documents by sha256, loaded at start |
//! | `PERSISTED_QUERIES_ONLY` | `false` | accept only the manifest's documents (needs the manifest) |
//!
//! A `.env` file in the working directory is read first by the binary (never by tests).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use rand::RngCore;

use crate::booking::coalesce::BookingPath;
use crate::persisted::PersistedQueryConfig;

/// Everything the server needs to start. Tests build it in code with [`Config::embedded`].
#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    pub redis_url: Option<String>,
    pub redis_channel: String,
    pub bind_addr: SocketAddr,
    pub jwt_secret: Secret,
    /// True when no JWT_SECRET was given and one was generated for this run.
    pub jwt_secret_generated: bool,
    /// Seeds the ticket-signing keys; the JWT secret when unset.
    pub ticket_signing_secret: Option<Secret>,
    pub access_token_ttl_minutes: i64,
    pub avatar_dir: PathBuf,
    pub cors_origins: CorsOrigins,
    pub mutations_per_minute: usize,
    pub trust_forwarded_for: bool,
    pub hold_ttl_seconds: i64,
    pub hold_max_seconds: i64,
    pub hold_warning_seconds: i64,
    pub waitlist_claim_seconds: i64,
    pub queue_pass_seconds: i64,
    pub queue_opens_minutes: i64,
    pub sweep_interval_ms: u64,
    pub live_coalesce_ms: u64,
    pub booking_path: BookingPath,
    pub seed_demo: bool,
    pub db_max_connections: u32,
    pub limits: Limits,
    pub introspection: bool,
    pub log_format: LogFormat,
    pub persisted_queries: PersistedQueryConfig,
}

/// Guards against expensive or abusive requests.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_query_depth: usize,
    pub max_query_complexity: usize,
    pub max_tickets_per_request: u32,
    /// Seconds a WebSocket client has to send `connection_init`.
    pub ws_init_timeout_seconds: u64,
    /// Seconds between the server's keep-alive pings on a WebSocket.
    pub ws_keepalive_seconds: u64,
    pub ws_max_subscriptions: usize,
    pub ws_max_connections_per_user: usize,
    /// Serve the `seatMapChanged` documents `events::direct_seat_map` recognises itself.
    pub ws_direct_seat_maps: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_query_depth: 12,
            max_query_complexity: 2000,
            max_tickets_per_request: 10,
            ws_init_timeout_seconds: 10,
            ws_keepalive_seconds: 15,
            ws_max_subscriptions: 50,
            ws_max_connections_per_user: 20,
            ws_direct_seat_maps: true,
        }
    }
}

/// Which browser origins may call the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers: only pages served from the API's own origin.
    SameOrigin,
    Any,
    List(Vec<String>),
}

impl CorsOrigins {
    fn parse(raw: &str) -> Self {
        let origins: Vec<String> = raw
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        if origins.iter().any(|origin| origin == "*") {
            Self::Any
        } else if origins.is_empty() {
            Self::SameOrigin
        } else {
            Self::List(origins)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A secret value whose `Debug` output never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn generate() -> Self {
        let mut bytes = [0u8; 48];
        rand::rng().fill_bytes(&mut bytes);
        Self(base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            bytes,
        ))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error(
        "JWT_SECRET must be set (at least 32 bytes) when DATABASE_URL points at PostgreSQL; only the embedded SQLite mode generates one"
    )]
    MissingJwtSecret,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://seatstorm.db?mode=rwc";
const MIN_JWT_SECRET_LEN: usize = 32;

impl Config {
    /// The embedded default: SQLite file, in-process bus, a generated JWT secret.
    pub fn embedded() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            redis_url: None,
            redis_channel: "seatstorm:live".to_owned(),
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            jwt_secret: Secret::generate(),
            jwt_secret_generated: true,
            ticket_signing_secret: None,
            access_token_ttl_minutes: 15,
            avatar_dir: PathBuf::from("uploads/avatars"),
            cors_origins: CorsOrigins::SameOrigin,
            mutations_per_minute: 120,
            trust_forwarded_for: false,
            hold_ttl_seconds: 600,
            hold_max_seconds: 1800,
            hold_warning_seconds: 120,
            waitlist_claim_seconds: 1800,
            queue_pass_seconds: 600,
            queue_opens_minutes: 60,
            sweep_interval_ms: 1000,
            live_coalesce_ms: 75,
            booking_path: BookingPath::Coalesced,
            seed_demo: true,
            db_max_connections: 32,
            limits: Limits::default(),
            introspection: true,
            log_format: LogFormat::Text,
            persisted_queries: PersistedQueryConfig::default(),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source; `lookup` returns `None` for an unset variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let mut config = Self::embedded();
        if let Some(url) = var("DATABASE_URL") {
            config.database_url = url;
        }
        config.redis_url = var("REDIS_URL");
        if let Some(channel) = var("REDIS_CHANNEL") {
            config.redis_channel = channel;
        }
        if let Some(addr) = var("BIND_ADDR") {
            config.bind_addr = parse("BIND_ADDR", &addr)?;
        }
        match var("JWT_SECRET") {
            Some(secret) if secret.len() < MIN_JWT_SECRET_LEN => {
                return Err(ConfigError::Invalid {
                    name: "JWT_SECRET",
                    reason: format!("must be at least {MIN_JWT_SECRET_LEN} bytes"),
                });
            }
            Some(secret) => {
                config.jwt_secret = Secret::new(secret);
                config.jwt_secret_generated = false;
            }
            None if config.is_postgres() => return Err(ConfigError::MissingJwtSecret),
            None => {}
        }
        match var("TICKET_SIGNING_SECRET") {
            Some(secret) if secret.len() < MIN_JWT_SECRET_LEN => {
                return Err(ConfigError::Invalid {
                    name: "TICKET_SIGNING_SECRET",
                    reason: format!("must be at least {MIN_JWT_SECRET_LEN} bytes"),
                });
            }
            Some(secret) => config.ticket_signing_secret = Some(Secret::new(secret)),
            None => {}
        }
        if let Some(value) = var("ACCESS_TOKEN_TTL_MINUTES") {
            config.access_token_ttl_minutes = parse("ACCESS_TOKEN_TTL_MINUTES", &value)?;
            if !(1..=24 * 60).contains(&config.access_token_ttl_minutes) {
                return Err(ConfigError::Invalid {
                    name: "ACCESS_TOKEN_TTL_MINUTES",
                    reason: "must be 1 to 1440".into(),
                });
            }
        }
        if let Some(dir) = var("AVATAR_DIR") {
            config.avatar_dir = PathBuf::from(dir);
        }
        if let Some(origins) = var("CORS_ORIGINS") {
            config.cors_origins = CorsOrigins::parse(&origins);
        }
        if let Some(value) = var("MUTATIONS_PER_MINUTE") {
            config.mutations_per_minute = parse("MUTATIONS_PER_MINUTE", &value)?;
        }
        if let Some(value) = var("TRUST_FORWARDED_FOR") {
            config.trust_forwarded_for = parse_bool("TRUST_FORWARDED_FOR", &value)?;
        }
        if let Some(value) = var("HOLD_TTL_SECONDS") {
            config.hold_ttl_seconds = parse("HOLD_TTL_SECONDS", &value)?;
        }
        if let Some(value) = var("HOLD_MAX_SECONDS") {
            config.hold_max_seconds = parse("HOLD_MAX_SECONDS", &value)?;
        }
        if config.hold_ttl_seconds < 1 || config.hold_max_seconds < config.hold_ttl_seconds {
            return Err(ConfigError::Invalid {
                name: "HOLD_MAX_SECONDS",
                reason: "holds need HOLD_TTL_SECONDS >= 1 and HOLD_MAX_SECONDS >= HOLD_TTL_SECONDS"
                    .into(),
            });
        }
        if let Some(value) = var("HOLD_WARNING_SECONDS") {
            config.hold_warning_seconds = parse("HOLD_WARNING_SECONDS", &value)?;
            if config.hold_warning_seconds < 0 {
                return Err(ConfigError::Invalid {
                    name: "HOLD_WARNING_SECONDS",
                    reason: "must be 0 (no warnings) or more".into(),
                });
            }
        }
        if let Some(value) = var("WAITLIST_CLAIM_SECONDS") {
            config.waitlist_claim_seconds = parse("WAITLIST_CLAIM_SECONDS", &value)?;
            if config.waitlist_claim_seconds < 1 {
                return Err(ConfigError::Invalid {
                    name: "WAITLIST_CLAIM_SECONDS",
                    reason: "must be at least 1".into(),
                });
            }
        }
        if let Some(value) = var("QUEUE_PASS_SECONDS") {
            config.queue_pass_seconds = parse("QUEUE_PASS_SECONDS", &value)?;
            if config.queue_pass_seconds < 1 {
                return Err(ConfigError::Invalid {
                    name: "QUEUE_PASS_SECONDS",
                    reason: "must be at least 1".into(),
                });
            }
        }
        if let Some(value) = var("QUEUE_OPENS_MINUTES") {
            config.queue_opens_minutes = parse("QUEUE_OPENS_MINUTES", &value)?;
            if config.queue_opens_minutes < 0 {
                return Err(ConfigError::Invalid {
                    name: "QUEUE_OPENS_MINUTES",
                    reason: "must be 0 or more".into(),
                });
            }
        }
        if let Some(value) = var("SWEEP_INTERVAL_MS") {
            config.sweep_interval_ms = parse("SWEEP_INTERVAL_MS", &value)?;
            if config.sweep_interval_ms == 0 {
                return Err(ConfigError::Invalid {
                    name: "SWEEP_INTERVAL_MS",
                    reason: "must be at least 1".into(),
                });
            }
        }
        if let Some(value) = var("LIVE_COALESCE_MS") {
            config.live_coalesce_ms = parse("LIVE_COALESCE_MS", &value)?;
        }
        if let Some(value) = var("BOOKING_PATH") {
            config.booking_path = parse("BOOKING_PATH", &value)?;
        }
        if let Some(value) = var("SEED_DEMO") {
            config.seed_demo = parse_bool("SEED_DEMO", &value)?;
        }
        if let Some(value) = var("DB_MAX_CONNECTIONS") {
            config.db_max_connections = parse("DB_MAX_CONNECTIONS", &value)?;
        }
        if let Some(value) = var("MAX_QUERY_DEPTH") {
            config.limits.max_query_depth = parse("MAX_QUERY_DEPTH", &value)?;
        }
        if let Some(value) = var("MAX_QUERY_COMPLEXITY") {
            config.limits.max_query_complexity = parse("MAX_QUERY_COMPLEXITY", &value)?;
        }
        if let Some(value) = var("MAX_TICKETS_PER_REQUEST") {
            config.limits.max_tickets_per_request = parse("MAX_TICKETS_PER_REQUEST", &value)?;
        }
        if let Some(value) = var("WS_INIT_TIMEOUT_SECONDS") {
            config.limits.ws_init_timeout_seconds = parse("WS_INIT_TIMEOUT_SECONDS", &value)?;
        }
        if let Some(value) = var("WS_KEEPALIVE_SECONDS") {
            config.limits.ws_keepalive_seconds = parse("WS_KEEPALIVE_SECONDS", &value)?;
        }
        if let Some(value) = var("WS_MAX_SUBSCRIPTIONS") {
            config.limits.ws_max_subscriptions = parse("WS_MAX_SUBSCRIPTIONS", &value)?;
        }
        if let Some(value) = var("WS_MAX_CONNECTIONS_PER_USER") {
            config.limits.ws_max_connections_per_user =
                parse("WS_MAX_CONNECTIONS_PER_USER", &value)?;
        }
        if let Some(value) = var("WS_DIRECT_SEAT_MAPS") {
            config.limits.ws_direct_seat_maps = parse_bool("WS_DIRECT_SEAT_MAPS", &value)?;
        }
        if config.limits.ws_init_timeout_seconds == 0 || config.limits.ws_keepalive_seconds == 0 {
            return Err(ConfigError::Invalid {
                name: "WS_KEEPALIVE_SECONDS",
                reason: "WebSocket timeouts must be at least one second".into(),
            });
        }
        if let Some(value) = var("INTROSPECTION") {
            config.introspection = parse_bool("INTROSPECTION", &value)?;
        }
        if let Some(value) = var("APQ_CACHE_SIZE") {
            config.persisted_queries.cache_size = parse("APQ_CACHE_SIZE", &value)?;
        }
        config.persisted_queries.manifest = var("PERSISTED_QUERIES_MANIFEST").map(PathBuf::from);
        if let Some(value) = var("PERSISTED_QUERIES_ONLY") {
            config.persisted_queries.only_known = parse_bool("PERSISTED_QUERIES_ONLY", &value)?;
            if config.persisted_queries.only_known && config.persisted_queries.manifest.is_none() {
                return Err(ConfigError::Invalid {
                    name: "PERSISTED_QUERIES_ONLY",
                    reason: "needs PERSISTED_QUERIES_MANIFEST, the documents to accept".into(),
                });
            }
        }
        if let Some(value) = var("LOG_FORMAT") {
            config.log_format = match value.to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError::Invalid {
                        name: "LOG_FORMAT",
                        reason: format!("expected text or json, got {other:?}"),
                    });
                }
            };
        }
        Ok(config)
    }

    /// WebSocket limits for the transport.
    pub fn ws_limits(&self) -> crate::websocket::WsLimits {
        crate::websocket::WsLimits {
            init_timeout: std::time::Duration::from_secs(self.limits.ws_init_timeout_seconds),
            keepalive: std::time::Duration::from_secs(self.limits.ws_keepalive_seconds),
            max_subscriptions: self.limits.ws_max_subscriptions,
            max_connections_per_user: self.limits.ws_max_connections_per_user,
            // With only the manifest's documents allowed, every document must pass its check; so
            // must every document when the limits are too tight for one the direct path serves
            // (depth 2, complexity at most 8: the root field and its seven scalars).
            direct_seat_maps: self.limits.ws_direct_seat_maps
                && !self.persisted_queries.only_known
                && self.limits.max_query_depth >= 2
                && self.limits.max_query_complexity >= 8,
        }
    }

    /// Waiting-room timing for the queue service.
    pub fn queue_policy(&self) -> crate::queue::service::QueuePolicy {
        crate::queue::service::QueuePolicy {
            pass_ttl: chrono::Duration::seconds(self.queue_pass_seconds),
            opens_before_sale: chrono::Duration::minutes(self.queue_opens_minutes),
        }
    }

    /// Hold timing and size limits for the booking service.
    pub fn hold_policy(&self) -> crate::booking::service::HoldPolicy {
        crate::booking::service::HoldPolicy {
            ttl: chrono::Duration::seconds(self.hold_ttl_seconds),
            max_lifetime: chrono::Duration::seconds(self.hold_max_seconds),
            max_per_request: self.limits.max_tickets_per_request,
            waitlist_claim: chrono::Duration::seconds(self.waitlist_claim_seconds),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://")
    }
}

fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|err: T::Err| ConfigError::Invalid {
            name,
            reason: err.to_string(),
        })
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(ConfigError::Invalid {
            name,
            reason: format!("expected true or false, got {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config_from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn no_variables_means_embedded_mode() {
        let config = config_from(&[]).expect("defaults are valid");
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert!(config.redis_url.is_none());
        assert!(config.jwt_secret.expose().len() >= MIN_JWT_SECRET_LEN);
    }

    #[test]
    fn postgres_without_a_jwt_secret_refuses_to_start() {
        let result = config_from(&[("DATABASE_URL", "postgres://localhost/seatstorm")]);
        assert!(matches!(result, Err(ConfigError::MissingJwtSecret)));
    }

    #[test]
    fn a_short_jwt_secret_is_rejected() {
        let result = config_from(&[("JWT_SECRET", "short")]);
        assert!(matches!(
            result,
            Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                ..
            })
        ));
    }

    #[test]
    fn seat_maps_are_written_directly_unless_something_must_check_every_document() {
        let direct = |vars: &[(&str, &str)]| {
            config_from(vars)
                .expect("valid")
                .ws_limits()
                .direct_seat_maps
        };
        assert!(direct(&[]));
        assert!(!direct(&[("WS_DIRECT_SEAT_MAPS", "false")]));
        assert!(!direct(&[("MAX_QUERY_DEPTH", "1")]));
        assert!(!direct(&[("MAX_QUERY_COMPLEXITY", "7")]));
        let mut only_known = config_from(&[]).expect("valid");
        only_known.persisted_queries.only_known = true;
        assert!(!only_known.ws_limits().direct_seat_maps);
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let secret = "a-very-secret-value-that-is-long-enough!";
        let config = config_from(&[("JWT_SECRET", secret)]).expect("valid");
        assert!(!format!("{config:?}").contains(secret));
    }

    #[test]
    fn cors_origins_are_a_comma_separated_list_or_a_star() {
        let config = config_from(&[("CORS_ORIGINS", "https://a.example, https://b.example/")])
            .expect("valid");
        assert_eq!(
            config.cors_origins,
            CorsOrigins::List(vec!["https://a.example".into(), "https://b.example".into()])
        );
        let any = config_from(&[("CORS_ORIGINS", "*")]).expect("valid");
        assert_eq!(any.cors_origins, CorsOrigins::Any);
    }

    #[test]
    fn known_documents_only_needs_a_manifest() {
        let result = config_from(&[("PERSISTED_QUERIES_ONLY", "true")]);
        assert!(matches!(
            result,
            Err(ConfigError::Invalid {
                name: "PERSISTED_QUERIES_ONLY",
                ..
            })
        ));
        let config = config_from(&[
            ("PERSISTED_QUERIES_ONLY", "true"),
            ("PERSISTED_QUERIES_MANIFEST", "/etc/seatstorm/queries.json"),
        ])
        .expect("valid");
        assert!(config.persisted_queries.only_known);
    }

    #[test]
    fn malformed_numbers_name_the_variable() {
        let result = config_from(&[("MAX_QUERY_DEPTH", "deep")]);
        assert!(matches!(
            result,
            Err(ConfigError::Invalid {
                name: "MAX_QUERY_DEPTH",
                ..
            })
        ));
    }
}

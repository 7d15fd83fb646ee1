//! The test harness: a fresh database per test, the real app on a random port, a GraphQL client.

use std::path::PathBuf;

use chrono::{Duration, Utc};
use entity::enums::{EventCategory, SectionKind, TierKind};
use sea_orm::{ConnectionTrait, Database, TransactionTrait};
use seatstorm::app::App;
use seatstorm::booking::coalesce::BookingPath;
use seatstorm::config::{Config, CorsOrigins, Secret};
use seatstorm::events::manage::{NewEvent, NewTier, create_event, publish_event};
use seatstorm::state::AppState;
use seatstorm::venues::layout::GridLayout;
use seatstorm::venues::service::{NewSection, NewVenue, create_venue};
use serde_json::{Value, json};
use uuid::Uuid;

/// Which database a test runs on, and how to get rid of it afterwards.
enum TestDatabase {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

pub struct TestApp {
    pub address: String,
    pub state: AppState,
    client: reqwest::Client,
    /// The database this app created and drops; `None` for a sibling instance sharing another's.
    database: Option<TestDatabase>,
}

/// How to start an app for a test; `None` keeps the default.
#[derive(Default)]
pub struct Options {
    pub seed_demo: bool,
    pub max_query_depth: Option<usize>,
    pub max_query_complexity: Option<usize>,
    pub mutations_per_minute: Option<usize>,
    pub introspection: Option<bool>,
    pub cors_origins: Option<CorsOrigins>,
    pub hold_ttl_seconds: Option<i64>,
    pub hold_warning_seconds: Option<i64>,
    pub waitlist_claim_seconds: Option<i64>,
    pub sweep_interval_ms: Option<u64>,
    /// A Redis of the test's own instead of TEST_REDIS_URL.
    pub redis_url: Option<String>,
    /// WebSocket limits: (init timeout s, keep-alive s, subscriptions per connection, connections per user).
    pub ws_limits: Option<(u64, u64, usize, usize)>,
    pub booking_path: Option<BookingPath>,
    pub persisted_queries: Option<seatstorm::persisted::PersistedQueryConfig>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let (database_url, database) = fresh_database().await;
        let mut config = Config::embedded();
        config.database_url = database_url;
        config.redis_url = options.redis_url.clone().or_else(|| {
            std::env::var("TEST_REDIS_URL")
                .ok()
                .filter(|url| !url.is_empty())
        });
        // A channel of its own, so concurrent tests never see each other's messages.
        config.redis_channel = format!("seatstorm-test:{}", Uuid::new_v4().simple());
        config.bind_addr = "127.0.0.1:0".parse().expect("valid address");
        config.jwt_secret = Secret::new("test-secret-that-is-long-enough-for-hs256!");
        config.jwt_secret_generated = false;
        config.seed_demo = options.seed_demo;
        config.db_max_connections = 20;
        if let Some(seconds) = options.hold_ttl_seconds {
            config.hold_ttl_seconds = seconds;
            config.hold_max_seconds = seconds.max(config.hold_max_seconds.min(seconds * 3));
        }
        if let Some((init, keepalive, subscriptions, connections)) = options.ws_limits {
            config.limits.ws_init_timeout_seconds = init;
            config.limits.ws_keepalive_seconds = keepalive;
            config.limits.ws_max_subscriptions = subscriptions;
            config.limits.ws_max_connections_per_user = connections;
        }
        if let Some(seconds) = options.hold_warning_seconds {
            config.hold_warning_seconds = seconds;
        }
        if let Some(seconds) = options.waitlist_claim_seconds {
            config.waitlist_claim_seconds = seconds;
        }
        if let Some(ms) = options.sweep_interval_ms {
            config.sweep_interval_ms = ms;
        }
        config.avatar_dir =
            std::env::temp_dir().join(format!("seatstorm-avatars-{}", Uuid::new_v4()));
        if let Some(depth) = options.max_query_depth {
            config.limits.max_query_depth = depth;
        }
        if let Some(complexity) = options.max_query_complexity {
            config.limits.max_query_complexity = complexity;
        }
        if let Some(limit) = options.mutations_per_minute {
            config.mutations_per_minute = limit;
        }
        if let Some(path) = options.booking_path {
            config.booking_path = path;
        }
        if let Some(introspection) = options.introspection {
            config.introspection = introspection;
        }
        if let Some(cors) = options.cors_origins {
            config.cors_origins = cors;
        }
        if let Some(persisted) = options.persisted_queries {
            config.persisted_queries = persisted;
        }
        Self::start(config, Some(database)).await
    }

    /// A second instance on the same database and Redis channel, as behind a load balancer.
    pub async fn spawn_sibling(&self) -> Self {
        let mut config = (*self.state.config).clone();
        config.seed_demo = false;
        Self::start(config, None).await
    }

    async fn start(config: Config, database: Option<TestDatabase>) -> Self {
        let app = App::build(config).await.expect("the app starts");
        let address = format!("127.0.0.1:{}", app.port());
        let state = app.state().clone();
        tokio::spawn(app.run_until_stopped());
        Self {
            address,
            state,
            // A hung request fails its test instead of hanging the suite.
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
            database,
        }
    }

    /// Whether this run uses Redis (TEST_REDIS_URL) rather than the in-process bus.
    pub fn uses_redis(&self) -> bool {
        self.state.config.redis_url.is_some()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql", self.address)
    }

    /// Posts a GraphQL request and returns the whole response body.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_with(None, query, variables).await
    }

    /// Posts a GraphQL request with `Authorization: Bearer <token>`.
    pub async fn graphql_as(&self, token: &str, query: &str, variables: Value) -> Value {
        self.graphql_with(Some(token), query, variables).await
    }

    /// Like `data`, signed in.
    pub async fn data_as(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.graphql_as(token, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    async fn graphql_with(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request reaches the server");
        assert!(
            response.status().is_success(),
            "GraphQL over HTTP answers 200, got {}",
            response.status()
        );
        response.json().await.expect("a JSON body")
    }

    /// Posts a GraphQL request that must succeed and returns its `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let body = self.graphql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub fn statements(&self) -> u64 {
        self.state.statements.get()
    }

    /// Registers a new account with a unique email; returns its session.
    pub async fn register(&self, account_type: &str) -> Session {
        let email = format!("{}@example.test", Uuid::new_v4().simple());
        let data = self
            .data(
                "mutation($input: RegisterInput!) { register(input: $input) {
                    accessToken refreshToken user { id email role } } }",
                json!({ "input": {
                    "email": email, "password": PASSWORD, "name": "Test Person", "accountType": account_type
                } }),
            )
            .await;
        Session::from_payload(&data["register"], &email)
    }

    pub async fn customer(&self) -> Session {
        self.register("CUSTOMER").await
    }

    pub async fn organizer(&self) -> Session {
        self.register("ORGANIZER").await
    }

    /// A signed-in admin: registered, promoted in the database, then signed in again for a token with
    /// the new role.
    pub async fn admin(&self) -> Session {
        use sea_orm::{ActiveModelTrait, EntityTrait, Set};
        let session = self.customer().await;
        let user = entity::prelude::User::find_by_id(session.user_id)
            .one(&self.state.db)
            .await
            .expect("query")
            .expect("user exists");
        let mut active: entity::user::ActiveModel = user.into();
        active.role = Set(entity::enums::Role::Admin);
        active.update(&self.state.db).await.expect("promote");
        self.login(&session.email, PASSWORD).await
    }

    /// A staff account working the doors for `organizer_id`'s events; returns its access token.
    pub async fn staff_of(&self, organizer_id: Uuid) -> String {
        use sea_orm::{ActiveModelTrait, Set};
        let now = Utc::now();
        let id = Uuid::now_v7();
        entity::user::ActiveModel {
            id: Set(id),
            email: Set(format!("{id}@staff.test")),
            password_hash: Set("not-a-hash".into()),
            name: Set("Door Staff".into()),
            role: Set(entity::enums::Role::Staff),
            organizer_id: Set(Some(organizer_id)),
            avatar_path: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.state.db)
        .await
        .expect("staff inserted");
        self.state
            .tokens
            .issue(id, entity::enums::Role::Staff, now)
            .expect("token")
            .0
    }

    /// `n` customers created directly in the database, each with a freshly signed access token: the
    /// clients of a race, without paying for `n` password hashes.
    pub async fn buyers(&self, n: usize) -> Vec<String> {
        use sea_orm::{EntityTrait, Set};
        let now = Utc::now();
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        let rows = ids.iter().map(|id| entity::user::ActiveModel {
            id: Set(*id),
            email: Set(format!("{id}@buyers.test")),
            password_hash: Set("not-a-hash".into()),
            name: Set("Buyer".into()),
            role: Set(entity::enums::Role::Customer),
            organizer_id: Set(None),
            avatar_path: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        });
        let rows: Vec<_> = rows.collect();
        for chunk in rows.chunks(500) {
            entity::prelude::User::insert_many(chunk.to_vec())
                .exec_without_returning(&self.state.db)
                .await
                .expect("buyers inserted");
        }
        ids.iter()
            .map(|id| {
                self.state
                    .tokens
                    .issue(*id, entity::enums::Role::Customer, now)
                    .expect("token")
                    .0
            })
            .collect()
    }

    pub async fn login(&self, email: &str, password: &str) -> Session {
        let data = self
            .data(
                "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken user { id email role } } }",
                json!({ "input": { "email": email, "password": password } }),
            )
            .await;
        Session::from_payload(&data["login"], email)
    }
}

/// The password every test account gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// A signed-in test account.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: Uuid,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl Session {
    pub fn from_payload(payload: &Value, email: &str) -> Self {
        Self {
            user_id: payload["user"]["id"]
                .as_str()
                .and_then(|id| Uuid::parse_str(id).ok())
                .expect("a user id"),
            email: email.to_owned(),
            access_token: payload["accessToken"]
                .as_str()
                .expect("an access token")
                .to_owned(),
            refresh_token: payload["refreshToken"]
                .as_str()
                .expect("a refresh token")
                .to_owned(),
        }
    }
}

/// The `extensions.code` of the first error, panicking with the body if there is none.
pub fn error_code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code, got {body}"))
        .to_owned()
}

async fn fresh_database() -> (String, TestDatabase) {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("seatstorm_test_{}", Uuid::new_v4().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("TEST_DATABASE_URL is reachable");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("can create a test database");
            admin.close().await.ok();
            let url = replace_database_name(&admin_url, &name);
            (url, TestDatabase::Postgres { admin_url, name })
        }
        _ => {
            let path = std::env::temp_dir().join(format!("seatstorm-test-{}.db", Uuid::new_v4()));
            let url = format!("sqlite://{}?mode=rwc", path.display());
            (url, TestDatabase::Sqlite(path))
        }
    }
}

fn replace_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let prefix = base.rsplit_once('/').map_or(base, |(prefix, _)| prefix);
    match query {
        Some(query) => format!("{prefix}/{name}?{query}"),
        None => format!("{prefix}/{name}"),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The owner removes the avatar directory it made; a sibling shares it.
        if self.database.is_some() {
            let _ = std::fs::remove_dir_all(&self.state.config.avatar_dir);
        }
        match &self.database {
            None => {}
            Some(TestDatabase::Sqlite(path)) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Some(TestDatabase::Postgres { admin_url, name }) => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime, which cannot await: the database is dropped from
                // a thread of its own, and `block_in_place` lets the runtime keep serving the app's
                // connections meanwhile (DROP DATABASE waits for every backend, including one still
                // authenticating a connection the app's pool just opened).
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for cleanup");
                    runtime.block_on(async move {
                        if let Ok(admin) = Database::connect(&admin_url).await {
                            let _ = admin
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                            admin.close().await.ok();
                        }
                    });
                });
                let _ = tokio::task::block_in_place(|| dropped.join());
            }
        }
    }
}

/// A small published event: a reserved section of 3 rows × 4 seats and a standing area of 100.
pub struct SmallEvent {
    pub venue_id: Uuid,
    pub event_id: Uuid,
}

/// The size of a test event: a reserved grid and a standing area.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub rows: u32,
    pub seats_per_row: u32,
    pub standing: i32,
    pub max_tickets_per_user: i32,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            rows: 3,
            seats_per_row: 4,
            standing: 100,
            max_tickets_per_user: 8,
        }
    }
}

/// Makes `organizer_id` the organizer of an event arranged through the services, so organizer
/// mutations on it go through the API.
pub async fn hand_over(app: &TestApp, event_id: Uuid, organizer_id: Uuid) {
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let model = entity::prelude::Event::find_by_id(event_id)
        .one(&app.state.db)
        .await
        .expect("query")
        .expect("event");
    let mut active: entity::event::ActiveModel = model.into();
    active.organizer_id = Set(organizer_id);
    active.update(&app.state.db).await.expect("update");
}

/// Arranges a venue and a published event through the services.
pub async fn create_small_event(app: &TestApp, title: &str, days_from_now: i64) -> SmallEvent {
    create_event_shaped(app, title, days_from_now, Shape::default()).await
}

pub async fn create_event_shaped(
    app: &TestApp,
    title: &str,
    days_from_now: i64,
    shape: Shape,
) -> SmallEvent {
    let now = Utc::now();
    let db = &app.state.db;
    let txn = db.begin().await.expect("transaction");
    let organizer_id = insert_user(&txn, "organizer").await;
    let venue = create_venue(
        &txn,
        NewVenue {
            owner_id: organizer_id,
            name: format!("{title} Hall"),
            city: "Testville".into(),
            address: "1 Test Street".into(),
            timezone: "UTC".into(),
            description: None,
            sections: vec![
                NewSection {
                    name: "Stalls".into(),
                    kind: SectionKind::Reserved,
                    standing_capacity: 0,
                    position: (0.0, 0.0),
                    seats: GridLayout {
                        rows: shape.rows,
                        seats_per_row: shape.seats_per_row,
                        origin: (0.0, 0.0),
                        facing_degrees: 90.0,
                        seat_spacing: 1.0,
                        row_spacing: 1.0,
                    }
                    .seats(),
                },
                NewSection {
                    name: "Standing".into(),
                    kind: SectionKind::GeneralAdmission,
                    standing_capacity: shape.standing,
                    position: (0.0, 10.0),
                    seats: Vec::new(),
                },
            ],
        },
        now,
    )
    .await
    .expect("venue is created");
    let sections = seatstorm::venues::service::sections_of_venues(&txn, &[venue.id])
        .await
        .expect("sections load");
    let section = |name: &str| {
        sections
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.id)
            .expect("section exists")
    };
    let starts_at = now + Duration::days(days_from_now);
    let draft = create_event(
        &txn,
        NewEvent {
            venue_id: venue.id,
            organizer_id,
            title: title.into(),
            performer: format!("{title} Band"),
            category: EventCategory::Concert,
            description: "A test event.".into(),
            starts_at,
            ends_at: starts_at + Duration::hours(2),
            sale_starts_at: now - Duration::hours(1),
            waiting_room_required: false,
            admission_rate_per_minute: 100,
            max_active_shoppers: 100,
            max_tickets_per_user: shape.max_tickets_per_user,
            tiers: vec![
                NewTier {
                    name: "Stalls".into(),
                    kind: TierKind::Reserved,
                    price_cents: 5000,
                    currency: "USD".into(),
                    capacity: 0,
                    section_ids: vec![section("Stalls")],
                },
                NewTier {
                    name: "Standing".into(),
                    kind: TierKind::GeneralAdmission,
                    price_cents: 2500,
                    currency: "USD".into(),
                    capacity: shape.standing,
                    section_ids: vec![section("Standing")],
                },
            ],
        },
        now,
    )
    .await
    .expect("event is created");
    let event = publish_event(&txn, draft, now)
        .await
        .expect("event is published");
    txn.commit().await.expect("commit");
    SmallEvent {
        venue_id: venue.id,
        event_id: event.id,
    }
}

/// Creates a draft event that the public must not see.
pub async fn create_draft_event(app: &TestApp) -> Uuid {
    let small = create_small_event(app, "Draft Base", 3).await;
    let now = Utc::now();
    let db = &app.state.db;
    let organizer_id = insert_user(db, "organizer").await;
    create_event(
        db,
        NewEvent {
            venue_id: small.venue_id,
            organizer_id,
            title: "Secret Draft".into(),
            performer: "Nobody Yet".into(),
            category: EventCategory::Comedy,
            description: String::new(),
            starts_at: now + Duration::days(5),
            ends_at: now + Duration::days(5) + Duration::hours(1),
            sale_starts_at: now,
            waiting_room_required: false,
            admission_rate_per_minute: 100,
            max_active_shoppers: 100,
            max_tickets_per_user: 8,
            tiers: Vec::new(),
        },
        now,
    )
    .await
    .expect("draft is created")
    .id
}

async fn insert_user(db: &impl ConnectionTrait, role: &str) -> Uuid {
    use entity::enums::Role;
    use sea_orm::{ActiveModelTrait, Set};
    let id = Uuid::now_v7();
    let role = match role {
        "organizer" => Role::Organizer,
        _ => Role::Customer,
    };
    entity::user::ActiveModel {
        id: Set(id),
        email: Set(format!("{id}@example.test")),
        password_hash: Set("not-a-hash".into()),
        name: Set("Test User".into()),
        role: Set(role),
        organizer_id: Set(None),
        avatar_path: Set(None),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .expect("user is inserted");
    id
}

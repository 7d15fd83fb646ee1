//! Builds the HTTP server: router, GraphQL over HTTP and WebSocket, health checks, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::avatar::AVATAR_URL_PREFIX;
use crate::auth::throttle::Throttles;
use crate::auth::tokens::TokenKeys;
use crate::booking::checkout_lane::Checkouts;
use crate::booking::coalesce::DirectBooking;
use crate::booking::seat_lane::SeatHolding;
use crate::config::{Config, CorsOrigins};
use crate::events::live_feed::SeatFeeds;
use crate::live::Bus;
use crate::metrics::Metrics;
use crate::payments::{Payments, SimulatedProvider};
use crate::persisted::PersistedQueries;
use crate::queue::pass::PassKeys;
use crate::schema::{AppSchema, build_schema};
use crate::state::AppState;
use crate::tickets::signing::TicketSigner;
use crate::websocket::ConnectionRegistry;
use crate::{db, demo, demo_page, transport};

/// Largest request body accepted: room for a 2 MB avatar in a multipart request, nothing near what
/// would let one client tie up memory.
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Responses smaller than this go uncompressed: below about a kilobyte gzip's header and CPU cost more
/// than the bytes it saves.
const MIN_COMPRESSED_BYTES: u16 = 1024;

/// The longest an HTTP request may take before it is answered 408.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The header carrying a request's id, accepted from the client or generated, echoed in the response.
const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// A built server, bound to its port but not yet serving.
pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

/// Shared by every handler behind one `Arc`: axum clones its state for each request, and cloning
/// this struct's handles one by one was ~3 % of the server's CPU under ticket-war.
pub(crate) struct HttpState {
    pub(crate) app: AppState,
    pub(crate) schema: AppSchema,
    /// The schema's persisted-query store, shared with the WebSocket's direct path, which parses
    /// the documents it recognises through the same cache.
    pub(crate) persisted: PersistedQueries,
}

impl App {
    /// Connects to the database, migrates, seeds the demo if asked, and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (db, statements) = db::connect(&config).await?;
        if config.seed_demo {
            demo::seed_if_empty(&db)
                .await
                .context("seeding demo data")?;
        }
        let bus = match &config.redis_url {
            Some(url) => Bus::redis(url, config.redis_channel.clone()).await?,
            None => Bus::in_process(),
        };
        let listener = TcpListener::bind(config.bind_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind_addr))?;
        let tokens = TokenKeys::new(
            &config.jwt_secret,
            chrono::Duration::minutes(config.access_token_ttl_minutes),
        );
        let passes = PassKeys::new(&config.jwt_secret);
        let signer = TicketSigner::new(
            config
                .ticket_signing_secret
                .as_ref()
                .unwrap_or(&config.jwt_secret),
        );
        let throttles = Arc::new(Throttles::new(config.mutations_per_minute));
        let feeds = SeatFeeds::start(
            db.clone(),
            &bus,
            std::time::Duration::from_millis(config.live_coalesce_ms),
        );
        let payments: Payments = Arc::new(SimulatedProvider);
        let direct_booking = DirectBooking::new(
            config.booking_path,
            db.clone(),
            payments.clone(),
            config.hold_policy(),
            bus.clone(),
        );
        let seat_holding = SeatHolding::new(
            config.booking_path,
            db.clone(),
            config.hold_policy(),
            bus.clone(),
        );
        let checkouts = Checkouts::new(config.booking_path, db.clone());
        let state = AppState {
            config: Arc::new(config),
            db,
            bus,
            statements,
            tokens,
            passes,
            signer,
            throttles,
            payments,
            direct_booking,
            seat_holding,
            checkouts,
            feeds,
            ws_connections: ConnectionRegistry::default(),
            metrics: Metrics::new(),
        };
        crate::booking::sweeper::spawn(
            state.clone(),
            std::time::Duration::from_millis(state.config.sweep_interval_ms),
        );
        let persisted = PersistedQueries::load(&state.config.persisted_queries)
            .context("loading persisted queries")?;
        let schema = build_schema(state.clone(), persisted.clone());
        let router = router(HttpState {
            app: state.clone(),
            schema,
            persisted,
        });
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.bind_addr)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The shared state, for tests that inspect the database or counters directly.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "Seat Storm listening; GraphiQL at /graphql");
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("HTTP server failed")
    }
}

fn router(state: HttpState) -> Router {
    let avatars = ServeDir::new(&state.app.config.avatar_dir);
    let cors = cors_layer(&state.app.config.cors_origins);
    let router = Router::new()
        .route("/", get(|| async { Redirect::permanent("/graphql") }))
        .route(
            "/graphql",
            get(transport::graphiql_or_websocket).post(transport::graphql),
        )
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(demo_page::router())
        .nest_service(AVATAR_URL_PREFIX, avatars)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        // No request may tie up a connection and its database work forever; subscriptions are not
        // affected once the WebSocket upgrade has been answered.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        // A 16,000-seat map is megabytes of JSON; gzip shrinks it about tenfold for clients that accept it.
        // A mutation's answer is a hundred bytes: gzip saves nothing there and setting up its
        // compressor cost ~15-25 µs of the server's ~160-180 µs per booking for clients accepting gzip.
        .layer(
            CompressionLayer::new()
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(MIN_COMPRESSED_BYTES))),
        )
        // Every log line of a request carries its id; the id the client (or the load balancer) sent is
        // kept, so one id follows a request through nginx, this instance and the client's own logs.
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(Arc::new(state));
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

fn cors_layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow_origin = match origins {
        CorsOrigins::SameOrigin => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        ),
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    // The path only: query strings are the client's business and stay out of the logs.
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        request_id,
    )
}

/// Prometheus text exposition of this instance's metrics.
async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let body = state.app.metrics.render(&state.app).await;
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers; a load balancer stops routing here otherwise. The bus is reported
/// but does not decide readiness: bookings work without Redis, only live updates pause.
async fn ready(State(state): State<Arc<HttpState>>) -> Response {
    let database = state.app.db.ping().await;
    let bus = if state.app.bus.is_healthy().await {
        "ok"
    } else {
        "unreachable"
    };
    match database {
        Ok(()) => Json(serde_json::json!({ "status": "ready", "database": "ok", "bus": bus }))
            .into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "unavailable", "database": "unreachable", "bus": bus })),
            )
                .into_response()
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

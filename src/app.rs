//! Builds the HTTP server: router, GraphQL over HTTP and WebSocket, health checks, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;

use crate::config::Config;
use crate::live::Bus;
use crate::schema::{AppSchema, build_schema, request_loaders};
use crate::state::AppState;
use crate::{db, demo};

/// Largest request body accepted on `/graphql`.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A built server, bound to its port but not yet serving.
pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

#[derive(Clone)]
struct HttpState {
    app: AppState,
    schema: AppSchema,
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
        let state = AppState {
            config: Arc::new(config),
            db,
            bus,
            statements,
        };
        let schema = build_schema(state.clone());
        let router = router(HttpState {
            app: state.clone(),
            schema,
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
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("HTTP server failed")
    }
}

fn router(state: HttpState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::permanent("/graphql") }))
        .route("/graphql", get(graphiql_or_websocket).post(graphql))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(state)
}

async fn graphql(State(state): State<HttpState>, request: GraphQLRequest) -> GraphQLResponse {
    let request = request_loaders(request.into_inner(), &state.app.db);
    state.schema.execute(request).await.into()
}

/// `GET /graphql` is GraphiQL for a browser and the subscription endpoint for a WebSocket upgrade.
async fn graphiql_or_websocket(State(state): State<HttpState>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let wants_upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if !wants_upgrade {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .title("Seat Storm")
                .finish(),
        )
        .into_response();
    }
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(protocol) => protocol,
        Err(rejection) => return rejection.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let schema = state.schema.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(|_payload| async { Ok(Data::default()) })
                .serve()
                .await
        })
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers; a load balancer stops routing here otherwise. The bus is reported
/// but does not decide readiness: bookings work without Redis, only live updates pause.
async fn ready(State(state): State<HttpState>) -> Response {
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

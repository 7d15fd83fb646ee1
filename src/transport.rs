//! GraphQL transports: POST over HTTP, and WebSocket subscriptions (graphql-transport-ws and the legacy
//! graphql-ws), both authenticated with the same access token.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::{ErrorExtensions, Pos};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use tracing::Instrument as _;

use crate::app::HttpState;
use crate::auth::Viewer;
use crate::auth::tokens::TokenKeys;
use crate::config::Config;
use crate::error::AppError;
use crate::gql::{ClientAddress, Loaders};

pub(crate) async fn graphql(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let mut request = request
        .into_inner()
        .data(Loaders::new(state.app.db.clone()));
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match authenticate(&state.app.tokens, authorization) {
        Ok(Some(viewer)) => request = request.data(viewer),
        Ok(None) => {}
        // A present but bad token fails the whole request: never fall back to anonymous.
        Err(err) => return refuse(err),
    }
    let address = client_address(&state.app.config, &headers, peer);
    state.schema.execute(request.data(address)).await.into()
}

fn refuse(err: AppError) -> GraphQLResponse {
    async_graphql::Response::from_errors(vec![err.extend().into_server_error(Pos::default())])
        .into()
}

/// Reads `Authorization: Bearer <token>`. No header is anonymous; anything else that does not verify is
/// UNAUTHENTICATED.
pub(crate) fn authenticate(
    tokens: &TokenKeys,
    authorization: Option<&str>,
) -> Result<Option<Viewer>, AppError> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            AppError::Unauthenticated("the Authorization header must be `Bearer <token>`".into())
        })?;
    let claims = tokens.verify(token)?;
    Ok(Some(Viewer {
        user_id: claims.sub,
        role: claims.role,
    }))
}

fn client_address(config: &Config, headers: &HeaderMap, peer: SocketAddr) -> ClientAddress {
    let forwarded = config
        .trust_forwarded_for
        .then(|| headers.get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|value| value.split(',').next())
        .map(|first| first.trim().to_owned())
        .filter(|first| !first.is_empty());
    ClientAddress(forwarded.unwrap_or_else(|| peer.ip().to_string()))
}

/// Read buffer of one WebSocket connection (see where it is set): a `subscribe` message is a few
/// hundred bytes. 1 KiB instead of 4 KiB took 10,000 idle subscribers from ~26 to ~22 KB each.
const WS_READ_BUFFER: usize = 1024;

/// `GET /graphql` is GraphiQL for a browser and the subscription endpoint for a WebSocket upgrade.
pub(crate) async fn graphiql_or_websocket(
    State(state): State<Arc<HttpState>>,
    request: Request,
) -> Response {
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
    let app = state.app.clone();
    let limits = state.app.config.ws_limits();
    // async-graphql picks the first protocol of the header it speaks; so does this.
    let legacy = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .split(',')
                .map(str::trim)
                .find(|p| *p == "graphql-transport-ws" || *p == "graphql-ws")
        })
        .is_some_and(|p| p == "graphql-ws");
    let persisted = state.persisted.clone();
    let metrics = state.app.metrics.clone();
    // The connection outlives this request, but its logs keep the upgrade request's id.
    let span = tracing::Span::current();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // tungstenite zero-fills its whole read buffer before every read, so each connection keeps
        // that much resident for its lifetime: 128 KiB by default, most of a subscriber's memory.
        // Clients only send small protocol messages; a larger frame still grows the buffer as needed.
        .read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |socket| {
            async move {
                let _open = metrics.websocket_connection();
                crate::websocket::serve(socket, protocol, legacy, schema, app, persisted, limits)
                    .await;
            }
            .instrument(span)
        })
}

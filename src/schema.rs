//! The GraphQL schema: roots merged from every domain, limits from Config, and the SDL export.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{MergedObject, MergedSubscription, Schema, SchemaBuilder, Subscription};
use chrono::{DateTime, Utc};
use futures::Stream;

use crate::auth::graphql::{AuthMutation, AuthQuery};
use crate::auth::throttle::Throttles;
use crate::booking::graphql::{BookingMutation, BookingQuery};
use crate::config::Limits;
use crate::events::graphql::EventQuery;
use crate::events::mutations::EventMutation;
use crate::events::subscriptions::EventSubscription;
use crate::guardrails::Guardrails;
use crate::metrics::{GraphQLMetrics, Metrics};
use crate::notifications::graphql::{
    NotificationMutation, NotificationQuery, NotificationSubscription,
};
use crate::orders::graphql::{OrderMutation, OrderQuery};
use crate::orders::subscriptions::OrderSubscription;
use crate::persisted::PersistedQueries;
use crate::queue::graphql::{QueueMutation, QueueQuery, QueueSubscription};
use crate::state::AppState;
use crate::tickets::graphql::{TicketMutation, TicketQuery, TicketSubscription};
use crate::venues::graphql::{VenueMutation, VenueQuery};
use crate::waitlist::graphql::{WaitlistMutation, WaitlistQuery, WaitlistSubscription};

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    EventQuery,
    VenueQuery,
    AuthQuery,
    BookingQuery,
    OrderQuery,
    NotificationQuery,
    WaitlistQuery,
    QueueQuery,
    TicketQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    AuthMutation,
    VenueMutation,
    EventMutation,
    BookingMutation,
    OrderMutation,
    NotificationMutation,
    WaitlistMutation,
    QueueMutation,
    TicketMutation,
);

/// Transport-level subscriptions.
#[derive(Default)]
pub struct ServerSubscription;

#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(
    ServerSubscription,
    EventSubscription,
    NotificationSubscription,
    OrderSubscription,
    WaitlistSubscription,
    QueueSubscription,
    TicketSubscription,
);

/// Slowest and fastest heartbeat a client may ask for.
const HEARTBEAT_SECONDS: std::ops::RangeInclusive<u64> = 1..=60;

#[Subscription]
impl ServerSubscription {
    /// The server's clock every `intervalSeconds` (1 to 60, default 5): a liveness check for the
    /// subscription transport.
    async fn heartbeat(&self, interval_seconds: Option<i32>) -> impl Stream<Item = DateTime<Utc>> {
        let seconds = interval_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(5)
            .clamp(*HEARTBEAT_SECONDS.start(), *HEARTBEAT_SECONDS.end());
        let interval = tokio::time::interval(Duration::from_secs(seconds));
        futures::stream::unfold(interval, |mut interval| async move {
            interval.tick().await;
            Some((Utc::now(), interval))
        })
    }
}

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

fn builder(
    limits: &Limits,
    introspection: bool,
    throttles: Arc<Throttles>,
    metrics: Metrics,
) -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    let builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    // First, so its request hook also times and counts what the guardrails refuse.
    .extension(GraphQLMetrics::new(metrics))
    .extension(Guardrails::new(throttles))
    .limit_depth(limits.max_query_depth)
    .limit_complexity(limits.max_query_complexity);
    if introspection {
        builder
    } else {
        builder.disable_introspection()
    }
}

/// The schema the server runs, carrying the shared state.
pub fn build_schema(state: AppState, persisted: PersistedQueries) -> AppSchema {
    let limits = state.config.limits.clone();
    let introspection = state.config.introspection;
    builder(
        &limits,
        introspection,
        Arc::clone(&state.throttles),
        state.metrics.clone(),
    )
    // After the metrics, which then count its refusals; it hands the parsed document on to the rest.
    .extension(persisted)
    .data(state)
    .finish()
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    builder(
        &Limits::default(),
        true,
        Arc::new(Throttles::new(1)),
        Metrics::new(),
    )
    .finish()
    .sdl()
}

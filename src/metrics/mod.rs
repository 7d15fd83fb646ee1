//! Prometheus metrics of one instance, served at `GET /metrics`.
//!
//! Built on the `prometheus` crate with a registry per [`Metrics`](crate::metrics::Metrics) rather
//! than the `metrics` facade: the facade installs one process-wide recorder, and the integration
//! tests run many apps in one process, each of which must count only its own requests. Counting
//! happens at the GraphQL layer ([`GraphQLMetrics`](crate::metrics::GraphQLMetrics)) and in the
//! transports, so domain services stay free of instrumentation. Figures that already live elsewhere
//! (queue lengths, the pool, the bus) are sampled when Prometheus scrapes.
//!
//! Queue gauges are read from the database and so describe the whole deployment, not this instance:
//! aggregate them across replicas with `max`, not `sum`.

mod graphql;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{
    CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use sea_orm::{DatabaseConnection, DbBackend};

pub use self::graphql::GraphQLMetrics;
use crate::state::AppState;

/// Distinct operation names kept as labels; past this, new names are counted as `(other)`, so clients
/// choosing names cannot grow the registry without bound.
const MAX_OPERATION_LABELS: usize = 500;
const MAX_LABEL_LEN: usize = 100;
pub(crate) const OTHER_OPERATION: &str = "(other)";

/// Latency buckets in seconds: from a cached read to a request that waited on the pool's timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Cheap to clone: every clone shares one registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    operation_seconds: HistogramVec,
    errors: IntCounterVec,
    bookings: IntCounterVec,
    holds: IntCounterVec,
    websocket_connections: IntGauge,
    streaming_operations: IntGauge,
    direct_seat_maps: IntGauge,
    sampled: Sampled,
    operation_labels: Mutex<HashSet<String>>,
    /// Serialises scrapes: sampled counters are reset and refilled before gathering.
    scrape: tokio::sync::Mutex<()>,
}

/// Values copied in at scrape time from where they are kept.
struct Sampled {
    queue_waiting: IntGauge,
    queue_shopping: IntGauge,
    queue_admitted: IntGauge,
    bus_published: IntCounter,
    bus_received: IntCounter,
    bus_publish_failures: IntCounter,
    bus_resyncs: IntCounter,
    bus_backlog: IntGauge,
    pool_size: IntGauge,
    pool_idle: IntGauge,
    pool_max: IntGauge,
    statements: IntCounter,
    lane_batches: IntCounterVec,
    lane_requests: IntCounterVec,
    lane_busy_seconds: CounterVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are constants of this module: a clash is a programming error caught by any test.
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        registry,
        IntGauge::new(name, help).expect("a valid gauge definition"),
    )
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(
        registry,
        IntCounter::new(name, help).expect("a valid counter definition"),
    )
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter definition"),
    )
}

fn float_counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    register(
        registry,
        CounterVec::new(Opts::new(name, help), labels).expect("a valid counter definition"),
    )
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("seatstorm".into()), None).expect("a valid registry prefix");
        let r = &registry;
        let operation_seconds = register(
            r,
            HistogramVec::new(
                HistogramOpts::new(
                    "graphql_request_duration_seconds",
                    "GraphQL request latency, by operation name (or first root field) and type",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["operation", "type"],
            )
            .expect("a valid histogram definition"),
        );
        let sampled = Sampled {
            queue_waiting: gauge(r, "queue_waiting", "shoppers waiting in all waiting rooms"),
            queue_shopping: gauge(
                r,
                "queue_shopping",
                "admitted shoppers whose queue pass is still valid",
            ),
            queue_admitted: gauge(
                r,
                "queue_admitted",
                "shoppers admitted from waiting rooms so far (all events)",
            ),
            bus_published: counter(r, "bus_published_total", "live messages published"),
            bus_received: counter(
                r,
                "bus_received_total",
                "live messages received by this instance from the bus",
            ),
            bus_publish_failures: counter(
                r,
                "bus_publish_failures_total",
                "publishes to Redis that failed or timed out (delivered locally only)",
            ),
            bus_resyncs: counter(
                r,
                "bus_resyncs_total",
                "reconnections of the Redis subscriber, each telling clients to resync",
            ),
            bus_backlog: gauge(
                r,
                "bus_backlog_messages",
                "live messages the slowest local subscriber has not read yet",
            ),
            pool_size: gauge(r, "db_pool_connections", "open database connections"),
            pool_idle: gauge(r, "db_pool_idle_connections", "idle database connections"),
            pool_max: gauge(r, "db_pool_max_connections", "database pool size limit"),
            statements: counter(r, "db_statements_total", "SQL statements executed"),
            lane_batches: counter_vec(
                r,
                "booking_lane_batches_total",
                "batches served by the booking lanes (tier: bookTickets, seats: holdBestAvailable)",
                &["lane"],
            ),
            lane_requests: counter_vec(
                r,
                "booking_lane_requests_total",
                "requests served by the booking lanes; divided by batches, the mean batch size",
                &["lane"],
            ),
            lane_busy_seconds: float_counter_vec(
                r,
                "booking_lane_busy_seconds_total",
                "time the booking lanes spent serving batches, summed over lanes",
                &["lane"],
            ),
        };
        Self(Arc::new(Inner {
            operation_seconds,
            errors: counter_vec(
                r,
                "graphql_errors_total",
                "GraphQL errors by root field and extensions.code",
                &["field", "code"],
            ),
            bookings: counter_vec(
                r,
                "bookings_total",
                "successful bookings (bookTickets, checkout)",
                &["field"],
            ),
            holds: counter_vec(
                r,
                "holds_total",
                "successful holds (holdTickets, holdSeats, holdBestAvailable)",
                &["field"],
            ),
            websocket_connections: gauge(r, "websocket_connections", "open WebSocket connections"),
            streaming_operations: gauge(
                r,
                "graphql_active_subscriptions",
                "GraphQL operations streaming over WebSocket (subscriptions)",
            ),
            direct_seat_maps: gauge(
                r,
                "websocket_direct_seat_maps",
                "seatMapChanged subscriptions whose messages the WebSocket renders itself, without \
                 executing the document per message (also counted in graphql_active_subscriptions)",
            ),
            sampled,
            operation_labels: Mutex::new(HashSet::new()),
            scrape: tokio::sync::Mutex::new(()),
            registry,
        }))
    }

    /// Holds one WebSocket connection in the gauge until dropped.
    pub fn websocket_connection(&self) -> GaugeGuard {
        GaugeGuard::new(self.0.websocket_connections.clone())
    }

    fn streaming_operation(&self) -> GaugeGuard {
        GaugeGuard::new(self.0.streaming_operations.clone())
    }

    /// Holds one direct `seatMapChanged` subscription in both subscription gauges until dropped.
    pub fn direct_seat_map(&self) -> (GaugeGuard, GaugeGuard) {
        (
            self.streaming_operation(),
            GaugeGuard::new(self.0.direct_seat_maps.clone()),
        )
    }

    fn operation_histogram(&self, operation: &str, kind: &str) -> Histogram {
        let label = self.operation_label(operation);
        self.0
            .operation_seconds
            .with_label_values(&[label.as_str(), kind])
    }

    fn observe_operation(&self, operation: &str, kind: &str, elapsed: Duration) {
        self.operation_histogram(operation, kind)
            .observe(elapsed.as_secs_f64());
    }

    fn count_error(&self, field: &str, code: &str) {
        self.0.errors.with_label_values(&[field, code]).inc();
    }

    fn root_field_succeeded(&self, field: &str) {
        match field {
            "bookTickets" | "checkout" => self.0.bookings.with_label_values(&[field]).inc(),
            "holdTickets" | "holdSeats" | "holdBestAvailable" => {
                self.0.holds.with_label_values(&[field]).inc();
            }
            _ => {}
        }
    }

    fn operation_label(&self, operation: &str) -> String {
        let operation: String = operation.chars().take(MAX_LABEL_LEN).collect();
        let mut known = self
            .0
            .operation_labels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.contains(&operation) {
            return operation;
        }
        if known.len() >= MAX_OPERATION_LABELS {
            return OTHER_OPERATION.to_owned();
        }
        known.insert(operation.clone());
        operation
    }

    /// Samples what is kept elsewhere and renders every metric in the Prometheus text format.
    pub async fn render(&self, state: &AppState) -> String {
        let _scrape = self.0.scrape.lock().await;
        self.sample(state).await;
        TextEncoder::new()
            .encode_to_string(&self.0.registry.gather())
            .unwrap_or_else(|err| {
                tracing::error!(error = %err, "cannot encode metrics");
                String::new()
            })
    }

    async fn sample(&self, state: &AppState) {
        let s = &self.0.sampled;
        let bus = state.bus.stats();
        set_counter(&s.bus_published, bus.published);
        set_counter(&s.bus_received, bus.received);
        set_counter(&s.bus_publish_failures, bus.publish_failures);
        set_counter(&s.bus_resyncs, bus.resyncs);
        s.bus_backlog.set(to_i64(bus.backlog as u64));
        set_counter(&s.statements, state.statements.get());
        for (lane, stats) in [
            ("tier", state.direct_booking.stats()),
            ("seats", state.seat_holding.stats()),
            ("checkout", state.checkouts.stats()),
        ] {
            set_counter(&s.lane_batches.with_label_values(&[lane]), stats.batches);
            set_counter(&s.lane_requests.with_label_values(&[lane]), stats.requests);
            let busy = s.lane_busy_seconds.with_label_values(&[lane]);
            busy.reset();
            busy.inc_by(stats.busy.as_secs_f64());
        }
        let (size, idle) = pool_use(&state.db);
        s.pool_size.set(i64::from(size));
        s.pool_idle.set(to_i64(idle as u64));
        s.pool_max.set(i64::from(if state.config.is_postgres() {
            state.config.db_max_connections
        } else {
            1
        }));
        match crate::queue::service::totals(&state.db, chrono::Utc::now()).await {
            Ok(totals) => {
                s.queue_waiting.set(to_i64(totals.waiting));
                s.queue_shopping.set(to_i64(totals.shopping));
                s.queue_admitted.set(totals.admitted);
            }
            // The scrape still shows the rest; the queue gauges keep their last values.
            Err(err) => tracing::warn!(error = %err, "metrics: cannot read queue totals"),
        }
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Copies a running total kept elsewhere into a counter (scrapes are serialised, so nothing else
/// writes it meanwhile).
fn set_counter(counter: &IntCounter, total: u64) {
    counter.reset();
    counter.inc_by(total);
}

/// Open and idle connections of the pool.
fn pool_use(db: &DatabaseConnection) -> (u32, usize) {
    // The pool getters panic on the other backend, so ask for the one this connection speaks.
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    }
}

/// Increments a gauge now and decrements it when dropped.
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_bounded() {
        let metrics = Metrics::new();
        for n in 0..MAX_OPERATION_LABELS {
            assert_eq!(metrics.operation_label(&format!("op{n}")), format!("op{n}"));
        }
        assert_eq!(metrics.operation_label("one_too_many"), OTHER_OPERATION);
        assert_eq!(metrics.operation_label("op7"), "op7");
    }

    #[test]
    fn a_gauge_guard_gives_back_what_it_took() {
        let metrics = Metrics::new();
        let guard = metrics.websocket_connection();
        assert_eq!(metrics.0.websocket_connections.get(), 1);
        drop(guard);
        assert_eq!(metrics.0.websocket_connections.get(), 0);
    }
}

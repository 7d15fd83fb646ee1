//! Criterion benchmarks of the CPU-bound steps on the booking and seat-map paths (issue #8).
//!
//! `cargo bench -p seatstorm --bench hot_path`; figures and what they mean are in `docs/profiling.md`.

use std::hint::black_box;

use async_graphql::{Request, Response};
use chrono::{Duration, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use entity::enums::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::DatabaseConnection;
use seatstorm::app::App;
use seatstorm::auth::tokens::TokenKeys;
use seatstorm::booking::best_available::{Candidate, choose, choose_first, seat_order};
use seatstorm::config::{Config, Secret};
use seatstorm::gql::Loaders;
use seatstorm::persisted::PersistedQueries;
use seatstorm::schema::{AppSchema, build_schema};
use seatstorm::state::AppState;
use uuid::Uuid;

/// A best-available window as `candidate_seats` reads it: rows of 100 seats, front to back, 20 rows to
/// a section, with `taken` of the seats already gone at random (a sale in progress leaves gaps).
fn window(size: usize, taken: f64, rng: &mut StdRng) -> Vec<Candidate> {
    let sections: Vec<Uuid> = (0..64).map(|_| Uuid::new_v4()).collect();
    let mut candidates = Vec::with_capacity(size);
    let mut seat = 0usize;
    while candidates.len() < size {
        let (row, number) = (seat / 100, seat % 100);
        let section = row / 20;
        seat += 1;
        if rng.random_bool(taken) {
            continue;
        }
        candidates.push(Candidate {
            seat_id: Uuid::new_v4(),
            section_rank: section as i32,
            section_id: sections[section % sections.len()],
            row_index: (row % 20) as i32,
            number: number as i32 + 1,
        });
    }
    candidates
}

fn best_available(c: &mut Criterion) {
    let mut group = c.benchmark_group("best_available");
    let mut rng = StdRng::seed_from_u64(8);
    // 2,000 is CANDIDATE_WINDOW; 10,000 is what a five times larger window would cost.
    for size in [2_000, 10_000] {
        for taken in [0.0, 0.3] {
            let candidates = window(size, taken, &mut rng);
            group.throughput(Throughput::Elements(size as u64));
            for (quantity, spread) in [(2, 1), (4, 1), (4, 64)] {
                let id = BenchmarkId::new(
                    format!(
                        "adjacent/taken{}%/q{quantity}/spread{spread}",
                        taken * 100.0
                    ),
                    size,
                );
                group.bench_with_input(id, &candidates, |b, candidates| {
                    b.iter(|| choose(black_box(candidates), quantity, true, spread, &mut rng))
                });
            }
            // What the coalescing lane does per buyer: the pool sorted once per batch, then the
            // best block read from its front.
            let mut sorted = candidates.clone();
            sorted.sort_by_key(seat_order);
            let id = BenchmarkId::new(format!("first/taken{}%/q2", taken * 100.0), size);
            group.bench_with_input(id, &sorted, |b, sorted| {
                b.iter(|| choose_first(black_box(sorted), 2, true, |_| true))
            });
            // A whole batch: 200 buyers of 2 seats placed in turn, each after the seats given to
            // those before it.
            let id = BenchmarkId::new(format!("batch200/taken{}%/q2", taken * 100.0), size);
            group.bench_with_input(id, &sorted, |b, sorted| {
                b.iter(|| {
                    let mut given = std::collections::HashSet::new();
                    for _ in 0..200 {
                        let seats = choose_first(black_box(sorted), 2, true, |seat| {
                            !given.contains(&seat.seat_id)
                        });
                        given.extend(seats.into_iter().flatten());
                    }
                    given.len()
                })
            });
        }
    }
    group.finish();
}

fn jwt(c: &mut Criterion) {
    let keys = TokenKeys::new(
        &Secret::new("benchmark-secret-that-is-long-enough-for-hs256"),
        Duration::minutes(15),
    );
    let (token, _) = keys
        .issue(Uuid::now_v7(), Role::Customer, Utc::now())
        .expect("signing works");
    let mut group = c.benchmark_group("jwt");
    group.bench_function("verify_access_token", |b| {
        b.iter(|| keys.verify(black_box(&token)).expect("valid"))
    });
    group.bench_function("issue_access_token", |b| {
        b.iter(|| keys.issue(Uuid::now_v7(), Role::Customer, Utc::now()))
    });
    // What each clone of the key material cost when `TokenKeys` and `PassKeys` held it by value (two of
    // each per AppState clone): a `Validation` with its hash sets and the two keys' byte vectors.
    let secret = b"benchmark-secret-that-is-long-enough-for-hs256";
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["seatstorm"]);
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    let by_value = (
        validation,
        EncodingKey::from_secret(secret),
        DecodingKey::from_secret(secret),
    );
    group.bench_function("clone_keys_by_value", |b| {
        b.iter(|| black_box(&by_value).clone())
    });
    group.finish();
}

/// The demo arena concert (16,000 reserved seats), with the query `scripts/bench-seatmap.sh` sends.
struct SeatMapFixture {
    runtime: tokio::runtime::Runtime,
    schema: AppSchema,
    state: AppState,
    db: DatabaseConnection,
    query: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl SeatMapFixture {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("seatstorm-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a writable temp dir");
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let mut config = Config::embedded();
        config.database_url = format!("sqlite://{}/bench.db?mode=rwc", dir.display());
        config.bind_addr = ([127, 0, 0, 1], 0).into();
        let app = runtime
            .block_on(App::build(config))
            .expect("the app builds");
        let state = app.state().clone();
        let persisted = PersistedQueries::load(&state.config.persisted_queries)
            .expect("no persisted queries configured");
        let db = state.db.clone();
        let schema = build_schema(state.clone(), persisted);
        let mut fixture = Self {
            runtime,
            schema,
            state,
            db,
            query: String::new(),
            _dir: TempDir(dir),
        };
        let events = fixture.execute(
            r#"{ events(filter: { search: "nova" }) { edges { node { id } } } }"#.to_owned(),
        );
        let event = events.data.into_json().expect("json")["events"]["edges"][0]["node"]["id"]
            .as_str()
            .expect("the demo arena concert")
            .to_owned();
        fixture.query = format!(
            r#"{{ seatMap(eventId: "{event}") {{ sections {{ section {{ id name kind }} tierId available seats {{ id row number x y status accessible }} }} }} }}"#
        );
        fixture
    }

    fn execute(&self, query: String) -> Response {
        let response = self.runtime.block_on(
            self.schema
                .execute(Request::new(query).data(Loaders::new(self.db.clone()))),
        );
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        response
    }
}

fn seat_map(c: &mut Criterion) {
    let fixture = SeatMapFixture::new();
    let response = fixture.execute(fixture.query.clone());
    let body = serde_json::to_vec(&response).expect("serialisable");
    let mut group = c.benchmark_group("seat_map_16000");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(body.len() as u64));
    // What a request costs the server before the HTTP layer: parse, validate, two queries, resolving
    // about 110,000 fields, then the response as JSON bytes.
    group.bench_function("execute_and_serialise", |b| {
        b.iter(|| {
            let response = fixture.execute(fixture.query.clone());
            serde_json::to_vec(&response).expect("serialisable")
        })
    });
    group.bench_function("serialise_response", |b| {
        b.iter(|| serde_json::to_vec(black_box(&response)).expect("serialisable"))
    });
    group.finish();

    // axum clones the router state for every request (and the `State` extractor once more).
    c.bench_function("app_state_clone", |b| {
        b.iter(|| black_box(&fixture.state).clone())
    });
}

/// What a raw document costs per request: parsed every time (before), or hashed and its parse cloned
/// from the persisted-query cache (after).
fn graphql_document(c: &mut Criterion) {
    let mut group = c.benchmark_group("graphql_document");
    for (name, query) in [
        (
            "book_tickets",
            "mutation($input: BookTicketsInput!) { bookTickets(input: $input) { id } }",
        ),
        (
            "seat_map_changed",
            "subscription($id: ID!) { seatMapChanged(eventId: $id, snapshotFormat: RUNS) { seq snapshot { statuses } statusChanges } }",
        ),
    ] {
        let parsed = async_graphql::parser::parse_query(query).expect("parses");
        group.bench_function(format!("{name}/parse"), |b| {
            b.iter(|| async_graphql::parser::parse_query(black_box(query)).expect("parses"))
        });
        group.bench_function(format!("{name}/hash_and_clone"), |b| {
            b.iter(|| {
                (
                    seatstorm::persisted::document_hash(black_box(query)),
                    black_box(&parsed).clone(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, best_available, jwt, seat_map, graphql_document);
criterion_main!(benches);

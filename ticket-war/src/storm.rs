//! The storm: attempts at the configured concurrency (closed loop) or rate (open loop), every
//! outcome counted by code and every latency recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::json;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::api::{Answer, Api};
use crate::args::{Args, Mode};
use crate::setup::Battlefield;

/// A confirmed booking: which buyer, which order, how many tickets.
#[derive(Debug, Clone)]
pub struct Confirmed {
    pub buyer: usize,
    /// The order's id, or the hold's with `--hold-only`.
    pub id: String,
    pub tickets: u64,
}

#[derive(Default)]
struct Tally {
    codes: BTreeMap<String, u64>,
    confirmed: Vec<Confirmed>,
    last_confirmed_at: Option<Instant>,
    first_sold_out_at: Option<Instant>,
}

/// Shared by the storm and the live watchers.
pub struct Shared {
    pub stop: AtomicBool,
    pub attempts: AtomicU64,
    pub tickets: AtomicU64,
    /// When the answers that changed each seat reached its buyer: a watcher's delivery latency
    /// starts at the answer whose change it receives.
    seat_answered: Mutex<HashMap<String, SeatAnswers>>,
    /// Seats the server gave to a second hold while the first still had them.
    pub seats_held_twice: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    /// Latency by the second of the storm its attempt started in: the opening rush, the steady
    /// state and the sell-out, which one histogram for the whole storm mixes.
    timeline: Mutex<Vec<Histogram<u64>>>,
    opened: OnceLock<Instant>,
    tally: Mutex<Tally>,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            stop: AtomicBool::new(false),
            attempts: AtomicU64::new(0),
            tickets: AtomicU64::new(0),
            seat_answered: Mutex::new(HashMap::new()),
            seats_held_twice: AtomicU64::new(0),
            latency: Mutex::new(new_histogram()),
            timeline: Mutex::new(Vec::new()),
            opened: OnceLock::new(),
            tally: Mutex::new(Tally::default()),
        })
    }

    /// Notes that a hold of these seats was just answered.
    pub fn seats_held(&self, seats: &[String]) {
        let now = Instant::now();
        let mut answered = lock(&self.seat_answered);
        for seat in seats {
            let answers = SeatAnswers {
                held: now,
                sold: None,
            };
            // Nothing in a storm releases a seat (holds outlive it), so a seat answered twice was
            // held twice.
            if answered.insert(seat.clone(), answers).is_some() {
                self.seats_held_twice.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Notes that the checkout of these (held) seats was just answered.
    pub fn seats_sold(&self, seats: &[String]) {
        let now = Instant::now();
        let mut answered = lock(&self.seat_answered);
        for seat in seats {
            if let Some(answers) = answered.get_mut(seat) {
                answers.sold = Some(now);
            }
        }
    }

    /// For each (seat, new status letter) of one message, when the answer that gave the seat that
    /// status reached its buyer, if it has. One lock per message: every subscriber's reader calls
    /// this for every message it gets.
    pub fn answered(&self, changes: &[(&str, char)]) -> Vec<Option<Instant>> {
        let answered = lock(&self.seat_answered);
        changes
            .iter()
            .map(|(seat, status)| {
                let answers = answered.get(*seat)?;
                match status {
                    'H' => Some(answers.held),
                    'S' => answers.sold,
                    _ => None,
                }
            })
            .collect()
    }

    /// When the last ticket was confirmed.
    pub fn last_confirmed_at(&self) -> Option<Instant> {
        lock(&self.tally).last_confirmed_at
    }
}

pub fn new_histogram() -> Histogram<u64> {
    // Microseconds up to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is valid"))
    })
}

/// Two significant digits: a storm keeps one of these per second.
fn second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 2).unwrap_or_else(|_| {
        Histogram::new(2).unwrap_or_else(|_| unreachable!("2 significant digits is valid"))
    })
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// When a seat's hold and its checkout were answered.
#[derive(Clone, Copy)]
struct SeatAnswers {
    held: Instant,
    sold: Option<Instant>,
}

/// What the storm did.
pub struct StormReport {
    pub elapsed: Duration,
    pub attempts: u64,
    pub codes: BTreeMap<String, u64>,
    pub confirmed: Vec<Confirmed>,
    pub tickets: u64,
    pub latency: Histogram<u64>,
    /// Latency by the second of the storm each attempt started in.
    pub timeline: Vec<Histogram<u64>>,
    /// From the start to the last confirmed ticket, when the storm sold out.
    pub sell_out: Option<Duration>,
}

/// Buyers not currently in a request: one live hold per buyer per event, so a buyer is never used
/// by two requests at once.
struct BuyerPool {
    free: Mutex<Vec<usize>>,
}

impl BuyerPool {
    fn take(&self) -> Option<usize> {
        lock(&self.free).pop()
    }

    /// Returns the buyer to the pool, unless they now hold seats (one active hold per buyer per
    /// event: they could only be refused).
    fn done(&self, buyer: usize, holding: bool) {
        if !holding {
            lock(&self.free).insert(0, buyer);
        }
    }
}

pub async fn run(
    api: &Api,
    args: &Args,
    field: &Arc<Battlefield>,
    buyers: &[String],
    shared: &Arc<Shared>,
) -> StormReport {
    let started = *shared.opened.get_or_init(Instant::now);
    let deadline = started + Duration::from_secs(args.duration);
    let pool = Arc::new(BuyerPool {
        free: Mutex::new((0..buyers.len()).rev().collect()),
    });
    let buyers: Arc<Vec<String>> = Arc::new(buyers.to_vec());
    let in_flight = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    match args.rate {
        None => {
            for _ in 0..args.concurrency {
                let (api, args, field) = (api.clone(), args.clone(), field.clone());
                let (pool, buyers, shared) = (pool.clone(), buyers.clone(), shared.clone());
                tasks.spawn(async move {
                    while keep_going(&shared, &args, deadline) {
                        let Some(buyer) = pool.take() else { break };
                        let held =
                            attempt(&api, &args, &field, buyer, &buyers[buyer], &shared).await;
                        pool.done(buyer, held && args.hold_only);
                    }
                });
            }
        }
        Some(rate) => {
            // Start attempts in 10 ms slices at the asked rate; an attempt that finds the client at
            // its concurrency limit is counted, not queued (that would hide the server's slowness).
            let per_slice = (rate as f64 / 100.0).max(0.0);
            let mut owed = 0.0;
            let mut ticker = tokio::time::interval(Duration::from_millis(10));
            while keep_going(shared, args, deadline) {
                ticker.tick().await;
                owed += per_slice;
                while owed >= 1.0 {
                    owed -= 1.0;
                    let (Ok(permit), Some(buyer)) =
                        (in_flight.clone().try_acquire_owned(), pool.take())
                    else {
                        count(shared, "CLIENT_SATURATED");
                        continue;
                    };
                    let (api, args, field) = (api.clone(), args.clone(), field.clone());
                    let (pool, buyers, shared) = (pool.clone(), buyers.clone(), shared.clone());
                    tasks.spawn(async move {
                        let held =
                            attempt(&api, &args, &field, buyer, &buyers[buyer], &shared).await;
                        pool.done(buyer, held && args.hold_only);
                        drop(permit);
                    });
                }
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let tally = std::mem::take(&mut *lock(&shared.tally));
    let sell_out = match (tally.first_sold_out_at, tally.last_confirmed_at) {
        (Some(_), Some(last)) => Some(last.saturating_duration_since(started)),
        _ => None,
    };
    StormReport {
        elapsed,
        attempts: shared.attempts.load(Ordering::Relaxed),
        codes: tally.codes,
        tickets: tally.confirmed.iter().map(|c| c.tickets).sum(),
        confirmed: tally.confirmed,
        latency: lock(&shared.latency).clone(),
        timeline: std::mem::take(&mut *lock(&shared.timeline)),
        sell_out,
    }
}

fn keep_going(shared: &Shared, args: &Args, deadline: Instant) -> bool {
    if shared.stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
        return false;
    }
    match args.max_attempts {
        Some(max) => shared.attempts.load(Ordering::Relaxed) < max,
        None => true,
    }
}

fn count(shared: &Shared, code: &str) {
    *lock(&shared.tally)
        .codes
        .entry(code.to_owned())
        .or_default() += 1;
}

/// One buyer's attempt, timed from the first request to the last answer; true if confirmed.
async fn attempt(
    api: &Api,
    args: &Args,
    field: &Battlefield,
    buyer: usize,
    token: &str,
    shared: &Shared,
) -> bool {
    shared.attempts.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let outcome = match args.mode {
        Mode::Ga => book(api, args, field, token).await,
        Mode::BestAvailable | Mode::HoldSeats => {
            hold_and_pay(api, args, field, token, shared).await
        }
    };
    let micros = u64::try_from(started.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let _ = lock(&shared.latency).record(micros);
    let second = shared.opened.get().map_or(0, |opened| {
        started.saturating_duration_since(*opened).as_secs() as usize
    });
    {
        let mut timeline = lock(&shared.timeline);
        if timeline.len() <= second {
            timeline.resize_with(second + 1, second_histogram);
        }
        let _ = timeline[second].record(micros);
    }
    let mut tally = lock(&shared.tally);
    let confirmed = outcome.is_ok();
    match outcome {
        Ok((id, tickets)) => {
            *tally.codes.entry("CONFIRMED".into()).or_default() += 1;
            tally.last_confirmed_at = Some(Instant::now());
            let sold = shared.tickets.fetch_add(tickets, Ordering::Relaxed) + tickets;
            if sold >= field.capacity {
                tally.first_sold_out_at.get_or_insert_with(Instant::now);
                if !args.keep_going {
                    shared.stop.store(true, Ordering::Relaxed);
                }
            }
            tally.confirmed.push(Confirmed { buyer, id, tickets });
        }
        Err(code) => {
            // Random seats already sold say nothing about the rest of the house.
            if code == "SOLD_OUT" && args.mode != Mode::HoldSeats {
                tally.first_sold_out_at.get_or_insert_with(Instant::now);
                if !args.keep_going {
                    shared.stop.store(true, Ordering::Relaxed);
                }
            }
            *tally.codes.entry(code).or_default() += 1;
        }
    }
    confirmed
}

fn key() -> String {
    Uuid::new_v4().to_string()
}

async fn book(
    api: &Api,
    args: &Args,
    field: &Battlefield,
    token: &str,
) -> Result<(String, u64), String> {
    let answer = api
        .call(
            Some(token),
            "mutation($input: BookTicketsInput!) { bookTickets(input: $input) { id } }",
            json!({ "input": { "tierId": field.ga_tier, "quantity": args.quantity,
                "paymentToken": "tok_visa", "idempotencyKey": key() } }),
        )
        .await;
    match answer {
        Answer::Data(data) => Ok((
            data["bookTickets"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            u64::from(args.quantity),
        )),
        Answer::Refused { code, .. } => Err(code),
    }
}

async fn hold_and_pay(
    api: &Api,
    args: &Args,
    field: &Battlefield,
    token: &str,
    shared: &Shared,
) -> Result<(String, u64), String> {
    let group = rand::rng().random_range(args.min_group..=args.max_group.max(args.min_group));
    let answer = match args.mode {
        Mode::HoldSeats => {
            let seats: Vec<&String> = field
                .seats
                .choose_multiple(&mut rand::rng(), group as usize)
                .collect();
            api.call(
                Some(token),
                "mutation($input: HoldSeatsInput!) { holdSeats(input: $input) { id seats { id } } }",
                json!({ "input": { "eventId": field.event_id, "seatIds": seats, "idempotencyKey": key() } }),
            )
            .await
        }
        _ => {
            api.call(
                Some(token),
                "mutation($input: HoldBestAvailableInput!) { holdBestAvailable(input: $input) { id seats { id } } }",
                json!({ "input": { "eventId": field.event_id, "quantity": group, "adjacent": true, "idempotencyKey": key() } }),
            )
            .await
        }
    };
    let hold = match answer {
        Answer::Data(data) => data
            .as_object()
            .and_then(|o| o.values().next())
            .cloned()
            .unwrap_or_default(),
        Answer::Refused { code, .. } => return Err(code),
    };
    let seats: Vec<String> = hold["seats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    shared.seats_held(&seats);
    if args.hold_only {
        return Ok((
            hold["id"].as_str().unwrap_or_default().to_owned(),
            seats.len() as u64,
        ));
    }
    let paid = api
        .call(
            Some(token),
            "mutation($input: CheckoutInput!) { checkout(input: $input) { id } }",
            json!({ "input": { "holdId": hold["id"], "paymentToken": "tok_visa", "idempotencyKey": key() } }),
        )
        .await;
    match paid {
        Answer::Data(data) => {
            shared.seats_sold(&seats);
            Ok((
                data["checkout"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                seats.len() as u64,
            ))
        }
        Answer::Refused { code, .. } => Err(format!("CHECKOUT_{code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_change_is_timed_from_the_answer_that_made_it() {
        let shared = Shared::new();
        let seats = ["s1".to_owned()];
        shared.seats_held(&seats);
        let [held, sold] = shared.answered(&[("s1", 'H'), ("s1", 'S')])[..] else {
            panic!("one answer per change");
        };
        let held = held.expect("the hold was answered");
        assert_eq!(sold, None, "not checked out yet");
        std::thread::sleep(Duration::from_millis(2));
        shared.seats_sold(&seats);
        let sold = shared.answered(&[("s1", 'S')])[0].expect("the checkout was answered");
        assert!(
            sold > held,
            "a SOLD change counts from the checkout, not the hold"
        );
        assert_eq!(
            shared.answered(&[("s1", 'H'), ("s1", 'A'), ("s2", 'H')]),
            [Some(held), None, None]
        );
        assert_eq!(shared.seats_held_twice.load(Ordering::Relaxed), 0);
        shared.seats_held(&seats);
        assert_eq!(shared.seats_held_twice.load(Ordering::Relaxed), 1);
    }
}

//! `ticket-war`: an on-sale storm against a running Seat Storm server, then an audit of the books.
//!
//! ```sh
//! MUTATIONS_PER_MINUTE=1000000 cargo run --release &            # the server (demo accounts seeded)
//! cargo run --release -p ticket-war -- --mode ga --tickets 10000 --concurrency 256
//! ```
//!
//! It creates its own venue, event and tier as the demo organizer, registers its buyers, optionally
//! connects live subscribers, storms, and audits: sold + held + available = capacity, no seat sold
//! twice, every confirmed answer backed by a paid order. Exit status 1 on any violation, 2 when the
//! run could not be set up.

mod api;
mod args;
mod report;
mod setup;
mod storm;
mod verify;
mod watchers;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{Args, Mode};

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(err) => {
            eprintln!("ticket-war: {err:#}");
            std::process::exit(2);
        }
    }
}

/// What a buyer's access token must outlive after the storm: the subscribers' grace and the audit.
const AUDIT_TIME: chrono::Duration = chrono::Duration::minutes(5);

/// True when the books balanced.
async fn run(mut args: Args) -> anyhow::Result<bool> {
    ensure_loopback(&args.url)?;
    if args.min_group == 0 || args.max_group < args.min_group || args.quantity == 0 {
        bail!("group sizes and quantity must be at least 1, with --min-group <= --max-group");
    }
    let api = api::Api::new(&args.url, args.concurrency)?;
    let status = |message: &str| {
        if !args.json {
            eprintln!("{message}");
        }
    };

    status("setting up the event...");
    let field = Arc::new(setup::battlefield(&api, &args).await?);
    // Each request needs a buyer of its own, and no buyer may own more than the event's cap.
    let per_attempt = match args.mode {
        Mode::Ga => u64::from(args.quantity),
        _ => u64::from(args.max_group),
    };
    let needed = if args.hold_only {
        // One active hold per buyer per event: every hold needs a buyer of its own.
        field.capacity.div_ceil(u64::from(args.min_group))
    } else {
        field
            .capacity
            .div_ceil(setup::PER_BUYER_CAP.saturating_sub(per_attempt).max(1))
    };
    args.buyers = args
        .buyers
        .max(args.concurrency)
        .max(usize::try_from(needed).unwrap_or(usize::MAX));
    status(&format!("registering {} buyers...", args.buyers));
    let mut buyers = setup::buyers(&api, args.buyers).await?;

    let shared = storm::Shared::new();
    let watchers = if args.subscribers > 0 {
        status(&format!("connecting {} subscribers...", args.subscribers));
        let plan = watchers::Plan {
            mode: args.mode,
            count: args.subscribers,
            connect_concurrency: args.connect_concurrency,
            full_snapshots: args.full_snapshots,
        };
        Some(watchers::start(&api.ws_url(), &field.event_id, &field.seats, plan, &shared).await)
    } else {
        None
    };
    // Connecting thousands of subscribers can outlast an access token: renew those that would
    // expire before the storm and the audit are over.
    let needed_until =
        chrono::Utc::now() + chrono::Duration::seconds(i64::try_from(args.duration)?) + AUDIT_TIME;
    let renewed = setup::renew_expiring(&api, &mut buyers, needed_until).await?;
    if renewed > 0 {
        status(&format!("renewed {renewed} buyers' access tokens"));
    }
    let buyers: Vec<String> = buyers.into_iter().map(|b| b.access_token).collect();

    status("storming...");

    let progress = progress_bar(&args, &field, &shared);
    let storm = storm::run(&api, &args, &field, &buyers, &shared).await;
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(progress) = &progress {
        progress.finish_and_clear();
    }
    let watch = match watchers {
        Some(watchers) => Some(
            watchers
                .finish(
                    Duration::from_secs(5),
                    args.mode == Mode::Ga && storm.sell_out.is_some(),
                )
                .await,
        ),
        None => None,
    };

    status("auditing...");
    let audit = verify::audit(
        &api,
        &field,
        &buyers,
        &storm.confirmed,
        args.hold_only,
        shared.seats_held_twice.load(Ordering::Relaxed),
        args.database_url.as_deref(),
    )
    .await
    .context("auditing the books")?;
    let report = report::json(&args, &storm, watch.as_ref(), &audit);
    if args.json {
        println!("{report}");
    } else {
        print!("{}", report::table(&report));
        if storm.codes.contains_key("TOO_MANY_REQUESTS") {
            eprintln!(
                "note: the server throttled buyers; start it with MUTATIONS_PER_MINUTE=1000000"
            );
        }
    }
    Ok(audit.violations.is_empty())
}

fn progress_bar(
    args: &Args,
    field: &setup::Battlefield,
    shared: &Arc<storm::Shared>,
) -> Option<ProgressBar> {
    if args.json {
        return None;
    }
    let bar = ProgressBar::new(field.capacity);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} tickets  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let (bar_ticker, shared) = (bar.clone(), shared.clone());
    tokio::spawn(async move {
        while !shared.stop.load(Ordering::Relaxed) {
            bar_ticker.set_position(shared.tickets.load(Ordering::Relaxed));
            bar_ticker.set_message(format!(
                "{} attempts",
                shared.attempts.load(Ordering::Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Some(bar)
}

/// The tool generates real load: it refuses to aim at anything but this machine.
fn ensure_loopback(base: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(base).with_context(|| format!("{base} is not a URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !loopback || !matches!(url.scheme(), "http" | "https") {
        bail!(
            "ticket-war only targets this machine (http://127.0.0.1, localhost or [::1]), not {base}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ensure_loopback;

    #[test]
    fn only_this_machine_is_a_target() {
        for ok in [
            "http://127.0.0.1:8000",
            "http://localhost:8000/",
            "http://[::1]:8000",
            "http://127.0.0.2",
        ] {
            assert!(ensure_loopback(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://example.com",
            "http://10.0.0.5:8000",
            "ftp://127.0.0.1",
            "nonsense",
        ] {
            assert!(ensure_loopback(refused).is_err(), "{refused}");
        }
    }
}

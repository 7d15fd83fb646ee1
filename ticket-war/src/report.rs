//! The report: a table for people, JSON for scripts.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::args::Args;
use crate::storm::StormReport;
use crate::verify::Audit;
use crate::watchers::WatchReport;

fn millis(micros: u64) -> f64 {
    (micros as f64 / 1000.0 * 100.0).round() / 100.0
}

fn percentiles(histogram: &Histogram<u64>) -> Value {
    if histogram.is_empty() {
        return Value::Null;
    }
    json!({
        "p50_ms": millis(histogram.value_at_quantile(0.50)),
        "p90_ms": millis(histogram.value_at_quantile(0.90)),
        "p99_ms": millis(histogram.value_at_quantile(0.99)),
        "p999_ms": millis(histogram.value_at_quantile(0.999)),
        "max_ms": millis(histogram.max()),
    })
}

pub fn json(args: &Args, storm: &StormReport, watch: Option<&WatchReport>, audit: &Audit) -> Value {
    let seconds = storm.elapsed.as_secs_f64().max(f64::EPSILON);
    json!({
        "mode": args.mode.name(),
        "hold_only": args.hold_only,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "elapsed_s": (seconds * 1000.0).round() / 1000.0,
        "attempts": storm.attempts,
        "attempts_per_s": (storm.attempts as f64 / seconds).round(),
        "confirmed": storm.confirmed.len(),
        "confirmed_per_s": (storm.confirmed.len() as f64 / seconds).round(),
        "tickets": storm.tickets,
        "tickets_per_s": (storm.tickets as f64 / seconds).round(),
        "sell_out_s": storm.sell_out.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
        "outcomes": storm.codes,
        "latency": percentiles(&storm.latency),
        "timeline": storm.timeline.iter().enumerate().map(|(second, latency)| json!({
            "second": second,
            "attempts": latency.len(),
            "p50_ms": millis(latency.value_at_quantile(0.50)),
            "p99_ms": millis(latency.value_at_quantile(0.99)),
            "max_ms": millis(latency.max()),
        })).collect::<Vec<_>>(),
        "subscribers": watch.map(|w| json!({
            "connected": w.connected,
            "connect_s": (w.connect_time.as_secs_f64() * 1000.0).round() / 1000.0,
            "messages": w.messages,
            "resyncs": w.resyncs,
            "refused": w.refused,
            "refused_codes": w.refused_codes,
            "delivery": percentiles(&w.delivery),
            "behind": w.behind,
        })),
        "audit": {
            "sold_per_api": audit.sold_per_api,
            "available_per_api": audit.available_per_api,
            "answers_checked": audit.answers_checked,
            "database_checked": audit.database_checked,
            "violations": audit.violations,
        },
    })
}

pub fn table(report: &Value) -> String {
    let mut out = String::new();
    let line = |out: &mut String, label: &str, value: String| {
        out.push_str(&format!("  {label:<22} {value}\n"));
    };
    let field = |path: &[&str]| {
        let mut value = report;
        for key in path {
            value = &value[*key];
        }
        match value {
            Value::Null => "-".to_owned(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    };
    out.push_str(&format!(
        "ticket-war: {} at concurrency {}{}\n",
        field(&["mode"]),
        field(&["concurrency"]),
        report["rate"]
            .as_u64()
            .map(|r| format!(", open loop {r}/s"))
            .unwrap_or_default()
    ));
    line(&mut out, "elapsed", format!("{} s", field(&["elapsed_s"])));
    line(
        &mut out,
        "attempts",
        format!(
            "{} ({}/s)",
            field(&["attempts"]),
            field(&["attempts_per_s"])
        ),
    );
    line(
        &mut out,
        "confirmed",
        format!(
            "{} ({}/s)",
            field(&["confirmed"]),
            field(&["confirmed_per_s"])
        ),
    );
    line(
        &mut out,
        "tickets",
        format!("{} ({}/s)", field(&["tickets"]), field(&["tickets_per_s"])),
    );
    line(
        &mut out,
        "sold out after",
        format!("{} s", field(&["sell_out_s"])),
    );
    for (code, n) in report["outcomes"].as_object().into_iter().flatten() {
        line(&mut out, &format!("  {code}"), n.to_string());
    }
    let latency = |out: &mut String, label: &str, path: &[&str]| {
        let mut value = report;
        for key in path {
            value = &value[*key];
        }
        if value.is_null() {
            return;
        }
        line(
            out,
            label,
            format!(
                "p50 {} ms  p90 {} ms  p99 {} ms  p99.9 {} ms  max {} ms",
                value["p50_ms"],
                value["p90_ms"],
                value["p99_ms"],
                value["p999_ms"],
                value["max_ms"]
            ),
        );
    };
    latency(&mut out, "latency", &["latency"]);
    for second in report["timeline"].as_array().into_iter().flatten() {
        line(
            &mut out,
            &format!("  started in second {}", second["second"]),
            format!(
                "{} attempts  p50 {} ms  p99 {} ms  max {} ms",
                second["attempts"], second["p50_ms"], second["p99_ms"], second["max_ms"]
            ),
        );
    }
    if !report["subscribers"].is_null() {
        line(
            &mut out,
            "subscribers",
            format!(
                "{} connected in {} s, {} refused, {} messages ({} resync snapshots), {} behind",
                field(&["subscribers", "connected"]),
                field(&["subscribers", "connect_s"]),
                field(&["subscribers", "refused"]),
                field(&["subscribers", "messages"]),
                field(&["subscribers", "resyncs"]),
                field(&["subscribers", "behind"])
            ),
        );
        for (code, n) in report["subscribers"]["refused_codes"]
            .as_object()
            .into_iter()
            .flatten()
        {
            line(&mut out, &format!("  refused {code}"), n.to_string());
        }
        latency(&mut out, "delivery", &["subscribers", "delivery"]);
    }
    line(
        &mut out,
        "audit",
        format!(
            "{} sold per API, {} available, {} answers checked, database {}",
            field(&["audit", "sold_per_api"]),
            field(&["audit", "available_per_api"]),
            field(&["audit", "answers_checked"]),
            if report["audit"]["database_checked"] == true {
                "checked"
            } else {
                "not checked"
            }
        ),
    );
    let violations = report["audit"]["violations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if violations.is_empty() {
        out.push_str("  no violations\n");
    } else {
        out.push_str(&format!("  {} VIOLATIONS:\n", violations.len()));
        for violation in violations {
            out.push_str(&format!(
                "    - {}\n",
                violation.as_str().unwrap_or_default()
            ));
        }
    }
    out
}

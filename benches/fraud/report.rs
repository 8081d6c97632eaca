//! The benchmark's report: one row per contender and emit mode, checked against the expected
//! answer, the ratios Eddy/Kafka Streams and Eddy/ceiling from the same run, and the latency
//! table; rendered as Markdown with the machine it ran on.

use std::collections::HashMap;
use std::fmt::Write;

use crate::contenders::{Ceiling, Emit, Engine};
use crate::data::{Expected, WindowKey, Workload};
use crate::run::Progress;

/// One catch-up result.
pub struct Row {
    pub contender: String,
    pub emit: Option<Emit>,
    engine: Option<Engine>,
    /// Events per second after the first commit (the ceiling: first message to last).
    rate: f64,
    /// Events per second from process start.
    cold_rate: f64,
    cpu_per_million: f64,
    peak_rss_mib: f64,
    results: Option<usize>,
    first_result_s: Option<f64>,
    pub correct: bool,
    verdict: String,
}

impl Row {
    pub fn ceiling(c: &Ceiling, wall: std::time::Duration, events: u64) -> Self {
        Row {
            contender: "ceiling (rdkafka consumer, counts only)".into(),
            emit: None,
            engine: None,
            rate: c.events as f64 / c.elapsed.as_secs_f64().max(1e-9),
            cold_rate: c.events as f64 / wall.as_secs_f64(),
            cpu_per_million: c.cpu_s * 1e6 / c.events.max(1) as f64,
            peak_rss_mib: c.peak_rss_mib,
            results: None,
            first_result_s: None,
            correct: c.events == events,
            verdict: format!("read {} events, {:.0} MB", c.events, c.bytes as f64 / 1e6),
        }
    }

    pub fn engine(
        engine: Engine,
        emit: Emit,
        p: &Progress,
        events: u64,
        results: &[crate::run::Row],
        expected: &Expected,
    ) -> Self {
        let verdict = check(emit, results, expected);
        Row {
            contender: engine.name().into(),
            emit: Some(emit),
            engine: Some(engine),
            rate: p.catch_up_rate(events),
            cold_rate: events as f64 / p.done.as_secs_f64(),
            cpu_per_million: p.cpu_s * 1e6 / events.max(1) as f64,
            peak_rss_mib: p.peak_rss_mib,
            results: Some(results.len()),
            first_result_s: p.first_result.map(|d| d.as_secs_f64()),
            correct: verdict.is_ok(),
            verdict: verdict.unwrap_or_else(|e| e),
        }
    }

    pub fn failed(engine: Engine, emit: Emit, error: &str) -> Self {
        Row {
            contender: engine.name().into(),
            emit: Some(emit),
            engine: Some(engine),
            rate: 0.0,
            cold_rate: 0.0,
            cpu_per_million: 0.0,
            peak_rss_mib: 0.0,
            results: None,
            first_result_s: None,
            correct: false,
            verdict: format!("FAILED: {error}"),
        }
    }

    /// A one-line summary for progress output.
    pub fn line(&self) -> String {
        format!(
            "{} {}: {:.0} events/s, {}",
            self.contender,
            self.emit.map_or("", Emit::name),
            self.rate,
            self.verdict
        )
    }
}

/// Compares results with the expected answer: for EMIT CHANGES the last count of every
/// window above 3; for EMIT FINAL each closed window exactly once, with its final count.
fn check(emit: Emit, results: &[crate::run::Row], expected: &Expected) -> Result<String, String> {
    let mut got: HashMap<WindowKey, u64> = HashMap::new();
    for (key, count) in results {
        match (emit, count) {
            (Emit::Changes, Some(n)) => {
                got.insert(key.clone(), *n);
            }
            (Emit::Changes, None) => {
                got.remove(key);
            }
            (Emit::Final, Some(n)) => {
                if got.insert(key.clone(), *n).is_some() {
                    return Err(format!("WRONG: window {key:?} emitted twice"));
                }
            }
            (Emit::Final, None) => return Err(format!("WRONG: tombstone for {key:?}")),
        }
    }
    let want = if emit == Emit::Final {
        &expected.closed
    } else {
        &expected.alerts
    };
    let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
    let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
    let wrong = got
        .iter()
        .filter(|(k, n)| want.get(*k).is_some_and(|m| m != *n))
        .count();
    if missing + extra + wrong > 0 {
        return Err(format!(
            "WRONG: {missing} windows missing, {extra} unexpected, {wrong} with a wrong count (of {})",
            want.len()
        ));
    }
    Ok(format!("correct ({} windows)", want.len()))
}

/// One latency result.
pub struct LatencyRow {
    contender: &'static str,
    rate: u32,
    sent: u64,
    results: usize,
    /// p50, p99, p99.9, max (ms).
    percentiles: Option<[i64; 4]>,
    error: Option<String>,
}

impl LatencyRow {
    pub fn new(engine: Engine, rate: u32, sent: u64, mut latencies: Vec<i64>) -> Self {
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        let percentiles = (!latencies.is_empty())
            .then(|| [at(0.5), at(0.99), at(0.999), latencies[latencies.len() - 1]]);
        LatencyRow {
            contender: engine.name(),
            rate,
            sent,
            results: latencies.len(),
            percentiles,
            error: None,
        }
    }

    pub fn failed(engine: Engine, rate: u32, error: &str) -> Self {
        LatencyRow {
            contender: engine.name(),
            rate,
            sent: 0,
            results: 0,
            percentiles: None,
            error: Some(error.to_string()),
        }
    }

    pub fn line(&self) -> String {
        match (&self.error, self.percentiles) {
            (Some(e), _) => format!("{} latency: FAILED: {e}", self.contender),
            (None, Some(p)) => format!(
                "{} latency at {}/s: p50 {} ms, p99 {} ms over {} results",
                self.contender, self.rate, p[0], p[1], self.results
            ),
            (None, None) => format!("{} latency: no results", self.contender),
        }
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores ({cpu}), {mem_gib:.0} GiB")
}

fn fmt_opt(v: Option<f64>, precision: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.precision$}"))
}

/// The whole report.
pub fn render(w: Workload, rows: &[Row], latencies: &[LatencyRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Fraud rule benchmark: {} events, {} cards, {} h of event time, {} partitions; {}.\n",
        w.events,
        w.cards,
        w.span_ms / 3_600_000,
        w.partitions,
        machine()
    );
    out.push_str("| contender | emit | events/s (catch-up) | events/s (from start) | CPU s / M events | peak RSS MiB | results written | first result (s) | answer |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.0} | {} | {} | {} |",
            r.contender,
            r.emit.map_or("–", Emit::name),
            r.rate,
            r.cold_rate,
            r.cpu_per_million,
            r.peak_rss_mib,
            r.results.map_or("–".into(), |n| n.to_string()),
            fmt_opt(r.first_result_s, 1),
            r.verdict
        );
    }
    out.push('\n');
    ratios(&mut out, rows);
    if !latencies.is_empty() {
        out.push_str("\n| contender (EMIT CHANGES) | input events/s | sent | results measured | p50 ms | p99 ms | p99.9 ms | max ms |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for l in latencies {
            let p = l.percentiles.map(|p| p.map(|v| v.to_string()));
            let cell = |i: usize| p.as_ref().map_or("–".to_string(), |p| p[i].clone());
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |{}",
                l.contender,
                l.rate,
                l.sent,
                l.results,
                cell(0),
                cell(1),
                cell(2),
                cell(3),
                l.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" FAILED: {e}"))
            );
        }
    }
    out
}

fn ratios(out: &mut String, rows: &[Row]) {
    let ceiling = rows.iter().find(|r| r.engine.is_none()).map(|r| r.rate);
    for emit in [Emit::Changes, Emit::Final] {
        let rate = |e: Engine| {
            rows.iter()
                .find(|r| r.engine == Some(e) && r.emit == Some(emit) && r.correct)
                .map(|r| r.rate)
        };
        let Some(eddy) = rate(Engine::Eddy) else {
            continue;
        };
        let ratio = |other: Option<f64>| fmt_opt(other.map(|o| eddy / o), 2);
        let _ = writeln!(
            out,
            "EMIT {}: Eddy / Kafka Streams in-memory = {}×, Eddy / Kafka Streams RocksDB = {}×, Eddy / ceiling = {}.",
            emit.name().to_uppercase(),
            ratio(rate(Engine::StreamsMemory)),
            ratio(rate(Engine::StreamsRocksDb)),
            ratio(ceiling)
        );
    }
}

//! Eddy's benchmark: the talk's fraud rule (authorizations per card in 5-minute tumbling
//! windows, counts above 3) run by Eddy and by Kafka Streams over the same preloaded topic on
//! the same local broker, one after another, beside the broker's own ceiling (a consumer that
//! only reads). Every contender's results are read back and checked against the answer
//! computed from the generator, so a fast wrong answer cannot win. A second phase produces
//! at a fixed rate and measures latency from produce to result.
//!
//! Run it with `benches/run.sh` (which fetches Kafka Streams, builds Eddy and starts the
//! broker); see `benches/README.md`. Under `cargo test` (no `--bench` argument) it does
//! nothing. It measures; it asserts no timings, only correctness (exit status 1 on a wrong
//! or missing result).

mod contenders;
mod data;
mod report;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use contenders::{Emit, Engine, Programs};
use data::Workload;
use report::{LatencyRow, Row};

type BoxError = Box<dyn std::error::Error>;

/// Eddy against Kafka Streams and the broker's ceiling.
#[derive(Parser)]
struct Options {
    /// Passed by `cargo bench`; without it (under `cargo test`) nothing runs.
    #[arg(long, hide = true)]
    bench: bool,
    /// `smoke` (CI: correctness, seconds), `full` (10M events), or a number of events.
    #[arg(long, default_value = "smoke")]
    size: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "EDDY_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// The eddy binary to run (default: the one cargo built with this harness).
    #[arg(long, default_value = env!("CARGO_BIN_EXE_eddy"))]
    eddy: PathBuf,
    /// Class path of the Kafka Streams application (jars and WindowedCount.class).
    #[arg(long)]
    streams_classpath: Option<String>,
    /// Folder for logs, SQL files and Kafka Streams state.
    #[arg(long)]
    work: Option<PathBuf>,
    /// Input rate of the latency phase (events/s); 0 skips it.
    #[arg(long)]
    latency_rate: Option<u32>,
    /// Run Eddy only (and the ceiling): for profiling.
    #[arg(long)]
    eddy_only: bool,
    /// A property for the Eddy server (repeatable), e.g. `num.stream.threads=2`.
    #[arg(long = "eddy-property")]
    eddy_properties: Vec<String>,
    /// How many Eddy servers run the rule together (one service id; CPU and memory are
    /// their sums).
    #[arg(long, default_value_t = 1)]
    eddy_servers: usize,
    /// Partitions of the input topic (and the results').
    #[arg(long, default_value_t = data::DEFAULT_PARTITIONS)]
    partitions: i32,
    /// Write the report (Markdown) here too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Internal: run as the ceiling consumer of BOOTSTRAP TOPIC.
    #[arg(long, num_args = 2, hide = true)]
    ceiling: Option<Vec<String>>,
}

/// The workload and phase lengths of a size.
struct Size {
    workload: Workload,
    /// Seconds a contender may take to catch up.
    timeout: Duration,
    /// Latency phase: rate, warm-up seconds, measured seconds.
    latency: (u32, u64, u64),
}

fn size(name: &str, partitions: i32) -> Result<Size, BoxError> {
    let hours = |h: i64| h * 3_600_000;
    let (events, cards, span_ms, latency) = match name {
        "smoke" => (100_000, 5_000, hours(2), (2_000, 5, 10)),
        "full" => (10_000_000, 100_000, hours(12), (20_000, 30, 60)),
        n => {
            let events: u64 = n.parse().map_err(|_| format!("bad --size {n}"))?;
            (events, 100_000, hours(12), (20_000, 20, 30))
        }
    };
    Ok(Size {
        workload: Workload {
            events,
            cards,
            span_ms,
            seed: 42,
            partitions,
        },
        timeout: Duration::from_secs(120 + events / 5_000),
        latency,
    })
}

fn main() -> ExitCode {
    let options = Options::parse();
    if let Some(args) = &options.ceiling {
        return match contenders::ceiling_child(&args[0], &args[1]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ceiling: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if !options.bench {
        eprintln!("the fraud benchmark runs with benches/run.sh (cargo bench); nothing to do");
        return ExitCode::SUCCESS;
    }
    match bench(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("bench: some contender gave a wrong or no answer (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every phase; true when every answer was right.
impl Options {
    /// Where the contenders' programs are, their files going to `work`.
    fn programs(&self, work: &std::path::Path) -> Programs {
        Programs {
            eddy: self.eddy.clone(),
            eddy_properties: self.eddy_properties.clone(),
            eddy_servers: self.eddy_servers,
            streams_classpath: self.streams_classpath.clone(),
            work: work.to_path_buf(),
        }
    }
}

fn bench(options: &Options) -> Result<bool, BoxError> {
    let size = size(&options.size, options.partitions)?;
    let w = size.workload;
    let run_id = format!("{}", data::now_ms());
    let work = options
        .work
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("eddy-bench-{run_id}")));
    std::fs::create_dir_all(&work)?;
    let programs = options.programs(&work);
    let bootstrap = options.bootstrap.as_str();
    let input = format!(
        "bench-auth-{}-{}-{}-p{}",
        w.events, w.cards, w.seed, w.partitions
    );
    let start_ms = data::load(bootstrap, &input, w)?;
    let expected = data::expected(w, start_ms);
    eprintln!(
        "bench: expected {} alert windows, {} of them closed",
        expected.alerts.len(),
        expected.closed.len()
    );

    let (ceiling, wall) = contenders::ceiling(bootstrap, &input, &work)?;
    let mut rows = vec![Row::ceiling(&ceiling, wall, w.events)];
    let engines: &[Engine] = if options.eddy_only {
        &[Engine::Eddy]
    } else {
        &[Engine::Eddy, Engine::StreamsMemory, Engine::StreamsRocksDb]
    };
    let context = Context {
        programs: &programs,
        bootstrap,
        run_id: &run_id,
        size: &size,
    };
    for emit in [Emit::Changes, Emit::Final] {
        for engine in engines {
            let row = catch_up(&context, (*engine, emit), &input, &expected, rows.len());
            eprintln!("bench: {}", row.line());
            rows.push(row);
        }
    }
    let all_right = ceiling.events == w.events && rows.iter().all(|r| r.correct);
    let mut latencies = Vec::new();
    let rate = options.latency_rate.unwrap_or(size.latency.0);
    if rate > 0 {
        for engine in engines.iter().filter(|e| **e != Engine::StreamsRocksDb) {
            let run = format!("{run_id}-live-{}", latencies.len());
            let row = latency(&context, *engine, rate, &run)
                .unwrap_or_else(|e| LatencyRow::failed(*engine, rate, &e.to_string()));
            eprintln!("bench: {}", row.line());
            latencies.push(row);
        }
    }
    let text = report::render(w, &rows, &latencies);
    println!("{text}");
    if let Some(path) = &options.report {
        std::fs::write(path, &text)?;
    }
    Ok(all_right)
}

/// What every run needs.
struct Context<'a> {
    programs: &'a Programs,
    bootstrap: &'a str,
    run_id: &'a str,
    size: &'a Size,
}

/// One catch-up run (start, wait until all input is committed, stop, read the results),
/// checked against `expected`.
fn catch_up(
    context: &Context<'_>,
    (engine, emit): (Engine, Emit),
    input: &str,
    expected: &data::Expected,
    n: usize,
) -> Row {
    let events = context.size.workload.events;
    let run = format!("{}-{n}-{}", context.run_id, emit.name());
    let measured = || -> Result<Row, BoxError> {
        let mut started = contenders::start(
            context.programs,
            context.bootstrap,
            (engine, emit),
            (input, context.size.workload.partitions),
            &run,
        )?;
        let progress = run::watch(
            &mut started.proc,
            context.bootstrap,
            &started.group,
            (input, events),
            &started.output,
            context.size.timeout,
        );
        started.proc.terminate();
        let progress = progress?;
        let results = run::read_results(context.bootstrap, &started.output)?;
        Ok(Row::engine(
            engine, emit, &progress, events, &results, expected,
        ))
    };
    measured().unwrap_or_else(|e| Row::failed(engine, emit, &e.to_string()))
}

/// One latency run: the engine reads a fresh topic fed at `rate` events/s with wall-clock
/// timestamps; a probe measures when each result arrives.
fn latency(
    context: &Context<'_>,
    engine: Engine,
    rate: u32,
    run: &str,
) -> Result<LatencyRow, BoxError> {
    let (programs, bootstrap) = (context.programs, context.bootstrap);
    let (_, warm_up, measured) = context.size.latency;
    let w = context.size.workload;
    let input = format!("bench-live-{run}");
    run::create_topic(bootstrap, (&input, w.partitions), &[])?;
    let started = contenders::start(
        programs,
        bootstrap,
        (engine, Emit::Changes),
        (&input, w.partitions),
        run,
    )?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let counted_from = data::now_ms() + (warm_up * 1000) as i64;
    let (sent, latencies) = std::thread::scope(|scope| {
        let probe =
            scope.spawn(|| run::probe_latencies(bootstrap, &started.output, counted_from, &stop));
        let sent = data::produce_live(bootstrap, &input, w, rate, warm_up + measured);
        std::thread::park_timeout(Duration::from_secs(3));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (sent, probe.join())
    });
    started.proc.terminate();
    let latencies = latencies.map_err(|_| "the latency probe panicked")??;
    Ok(LatencyRow::new(engine, rate, sent?, latencies))
}

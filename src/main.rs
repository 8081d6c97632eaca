//! The `eddy` binary: parses the command line and hands each subcommand to the library.
//!
//! `server` runs SQL files on Kafka, `cli` is the shell, `check` parses SQL files, `print` shows a topic,
//! `datagen` writes sample data. No logic lives here beyond argument handling and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use eddy::kafka::KafkaConfig;
use eddy::server::http::HttpLimits;

/// mimalloc rather than glibc's malloc: the engine allocates many small, short-lived values
/// per record (keys, states, arrays), which glibc's allocator handled at a quarter of the
/// run time in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Eddy: continuous SQL over Apache Kafka, in ksqlDB's dialect.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: ksqlDB's REST API and persistent queries on Kafka, until stopped.
    Server {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Where the REST API listens (ksqlDB's `listeners`).
        #[arg(long, default_value = "http://0.0.0.0:8088")]
        listeners: String,
        /// SQL file (or folder of .sql files, run in name order) to run headless: its
        /// statements run at start, and REST requests that would change the server are refused.
        #[arg(long)]
        queries_file: Option<PathBuf>,
        /// How the other servers of the service id reach this one (ksqlDB's
        /// ksql.advertised.listener; default: the first listener, 0.0.0.0 as 127.0.0.1).
        #[arg(long)]
        advertised_listener: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// The interactive SQL shell, a client of a server's REST API.
    Cli {
        /// The server's URL.
        #[arg(default_value = "http://localhost:8088")]
        url: String,
        /// Run these statements and exit (non-zero if one fails).
        #[arg(long, short = 'e')]
        execute: Option<String>,
        /// Run this file's statements and exit (non-zero if one fails).
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// Vi key bindings (default: Emacs).
        #[arg(long)]
        vi: bool,
        /// Output format: tabular or json.
        #[arg(long, default_value = "tabular")]
        output: String,
        /// User for a server with Basic authentication.
        #[arg(long, short = 'u')]
        user: Option<String>,
        /// The user's password (default: the EDDY_PASSWORD environment variable).
        #[arg(long, short = 'p', env = "EDDY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Parse and plan SQL files (folders: their .sql files); report problems as file:line:col.
    Check {
        /// Files or folders to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run test cases: `eddy test qtt PATH...` runs ksqlDB's functional test files on the
    /// in-memory driver; `eddy test rest PATH...` runs its REST test files through the HTTP API;
    /// `eddy test queries PATH...` runs the tests beside `.sql` files (`X.input.json`,
    /// `X.output.json`); `eddy test --sql F --input I --output O` runs one (ksql-test-runner's form).
    Test(TestArgs),
    /// Show the records of a topic.
    Print {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The topic.
        topic: String,
        /// Start at the earliest offset.
        #[arg(long)]
        from_beginning: bool,
        /// Keys are windowed with this window size (e.g. 300000 for 5 minutes).
        #[arg(long)]
        window_size_ms: Option<i64>,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Produce sample data: card authorizations, and the orders system's orders, payments,
    /// customers and stock (the demo's topics).
    Datagen(DatagenArgs),
}

#[derive(Args)]
struct DatagenArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Topic of the authorizations.
    #[arg(long, default_value = "authorizations")]
    topic: String,
    /// Authorizations per second (0: none).
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Distinct cards.
    #[arg(long, default_value_t = 200)]
    cards: u32,
    /// Orders per second, each with a payment (0: none); customers and stock are written
    /// first, and the warehouse restocks every minute.
    #[arg(long, default_value_t = 0.0)]
    orders: f64,
    /// Stop after this many seconds (default: run until stopped).
    #[arg(long)]
    seconds: Option<u64>,
}

#[derive(Args)]
struct TestArgs {
    /// The kind of test files (`qtt`, `rest` or `queries`).
    kind: Option<String>,
    /// Files or folders.
    paths: Vec<PathBuf>,
    /// SQL file of a single test (repeatable: run in order).
    #[arg(long, short = 's')]
    sql: Vec<PathBuf>,
    /// Input records of a single test: {"inputs": [...]}.
    #[arg(long, short = 'i', requires = "sql")]
    input: Option<PathBuf>,
    /// Expected output records of a single test: {"outputs": [...]}.
    #[arg(long, short = 'o', requires = "sql")]
    output: Option<PathBuf>,
    /// Print every case, not only failures.
    #[arg(long)]
    verbose: bool,
}

/// Bounds on what one client may ask of the server (defaults: `eddy::server::http::HttpLimits`).
#[derive(Args)]
struct LimitArgs {
    /// Connections served at once; more wait until one closes.
    #[arg(long, default_value_t = HttpLimits::default().max_connections)]
    max_connections: usize,
    /// Time a client has to send a request's headers (and, idle, its next request).
    #[arg(long, default_value_t = HttpLimits::default().header_timeout.as_millis() as u64)]
    header_timeout_ms: u64,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = HttpLimits::default().max_request_bytes)]
    max_request_bytes: usize,
    /// The most statements one /ksql request may have.
    #[arg(long, default_value_t = HttpLimits::default().max_statements)]
    max_statements: usize,
    /// How long one /ksql request may run statements.
    #[arg(long, default_value_t = HttpLimits::default().request_budget.as_millis() as u64)]
    request_timeout_ms: u64,
    /// Bytes of rows a push query's client may fall behind by before it is disconnected.
    #[arg(long, default_value_t = HttpLimits::default().push_buffer_bytes)]
    push_buffer_bytes: usize,
    /// Push queries with a consumer of their own (aggregations, joins, from the beginning)
    /// at once (ksqlDB's ksql.max.push.queries).
    #[arg(long, default_value_t = HttpLimits::default().max_push_queries)]
    max_push_queries: usize,
}

impl LimitArgs {
    fn limits(&self) -> HttpLimits {
        HttpLimits {
            max_connections: self.max_connections,
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            max_request_bytes: self.max_request_bytes,
            max_statements: self.max_statements,
            request_budget: Duration::from_millis(self.request_timeout_ms),
            push_buffer_bytes: self.push_buffer_bytes,
            max_push_queries: self.max_push_queries,
            ..HttpLimits::default()
        }
    }
}

#[derive(Args)]
struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "EDDY_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    bootstrap_servers: String,
    /// ksqlDB's ksql.service.id: prefixes consumer groups and internal topics.
    #[arg(long, default_value = "default_")]
    service_id: String,
    /// Extra Kafka client property, e.g. -p security.protocol=SASL_SSL (repeatable);
    /// -p processing.guarantee=exactly_once_v2 makes exactly-once the server's default.
    #[arg(short = 'p', long = "property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// This server's stable identity among the servers of its service id, kept across
    /// restarts: given, the server is a static member of its queries' groups (restarted
    /// within 10 s, it gets its partitions back without a rebalance; stopped, it hands them
    /// over only after 10 s). Default: the host name and the REST port, for transactional
    /// ids only (a stopped server hands its partitions over at once).
    #[arg(long, env = "EDDY_INSTANCE_ID")]
    instance_id: Option<String>,
}

impl KafkaArgs {
    /// A server's configuration: without `--instance-id`, a dynamic group member whose
    /// transactional ids end in the host name and the REST port of `listeners`.
    fn server_config(mut self, listeners: &str) -> KafkaConfig {
        let static_membership = self.instance_id.is_some();
        self.instance_id
            .get_or_insert_with(|| default_instance_id(listeners));
        KafkaConfig {
            static_membership,
            ..self.config()
        }
    }

    fn config(self) -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: self.bootstrap_servers,
            service_id: self.service_id,
            properties: self.properties,
            static_membership: self.instance_id.is_some(),
            instance_id: self.instance_id.unwrap_or_else(|| "eddy".into()),
        }
    }
}

/// A server's default instance id: the host name and the port it listens on.
fn default_instance_id(listeners: &str) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "eddy".into());
    let port = listeners
        .rsplit(':')
        .next()
        .map(|p| p.trim_end_matches('/'))
        .unwrap_or("8088");
    format!("{host}-{port}")
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("expected key=value, got {s}"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    // Every command parses and plans statements (a server its queries file and the command
    // topic's statements, `check` and `test` theirs) on a thread with room for the deepest
    // statement allowed (see sql::limits); the main thread's 8 MiB are not enough.
    let main = std::thread::Builder::new()
        .name("eddy-main".into())
        .stack_size(eddy::sql::limits::THREAD_STACK)
        .spawn(move || run(cli));
    match main.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(e) => report(Err(eddy::Error::Io {
            path: "the main thread".into(),
            source: e,
        })),
    }
}

fn run(args: Cli) -> ExitCode {
    match args.command {
        Command::Server {
            kafka,
            listeners,
            queries_file,
            advertised_listener,
            limits,
        } => run_server(
            kafka,
            (listeners, advertised_listener),
            queries_file,
            limits.limits(),
        ),
        Command::Check { files } => check(&files),
        Command::Cli {
            url,
            execute,
            file,
            vi,
            output,
            user,
            password,
        } => cli(eddy::cli::CliOptions {
            credentials: user.map(|u| (u, password.unwrap_or_default())),
            url,
            execute,
            file,
            vi,
            output: if output.eq_ignore_ascii_case("json") {
                eddy::cli::render::OutputFormat::Json
            } else {
                eddy::cli::render::OutputFormat::Tabular
            },
        }),
        Command::Test(args) => test_command(args),
        Command::Print {
            kafka,
            topic,
            from_beginning,
            window_size_ms,
            limit,
        } => print(
            kafka,
            eddy::kafka::print::PrintOptions {
                topic,
                from_beginning,
                window_size_ms,
                limit,
            },
        ),
        Command::Datagen(args) => datagen(args),
    }
}

fn print(kafka: KafkaArgs, options: eddy::kafka::print::PrintOptions) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    let _ = ctrlc_flag(Arc::clone(&stop));
    report(
        eddy::kafka::print::print_topic(&kafka.config(), &options, &stop)
            .map_err(eddy::Error::from),
    )
}

fn datagen(args: DatagenArgs) -> ExitCode {
    let rates = eddy::datagen::Rates {
        authorizations: args.rate,
        cards: args.cards,
        orders: args.orders,
    };
    let topic = args.topic;
    let seconds = args.seconds.map(Duration::from_secs);
    match eddy::datagen::produce(&args.kafka.config(), &topic, &rates, seconds) {
        Ok(sent) => {
            eprintln!(
                "produced {} authorizations to {topic}, {} orders and payments",
                sent.authorizations, sent.orders
            );
            ExitCode::SUCCESS
        }
        Err(e) => report(Err(e.into())),
    }
}

fn run_server(
    kafka: KafkaArgs,
    (listeners, advertised_listener): (String, Option<String>),
    queries_file: Option<PathBuf>,
    limits: HttpLimits,
) -> ExitCode {
    let kafka = kafka.server_config(&listeners);
    // Statements are parsed and planned on the runtime's threads (see sql::limits).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(eddy::sql::limits::THREAD_STACK)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return report(Err(eddy::Error::Io {
                path: "tokio runtime".into(),
                source: e,
            }));
        }
    };
    report(
        runtime.block_on(eddy::server::run(eddy::server::ServerConfig {
            kafka,
            listeners,
            queries_file,
            limits,
            advertised_listener,
        })),
    )
}

fn cli(options: eddy::cli::CliOptions) -> ExitCode {
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        return ExitCode::from(2);
    };
    if runtime.block_on(eddy::cli::run(options)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Sets `flag` on Ctrl-C, from a small background runtime.
fn ctrlc_flag(flag: Arc<AtomicBool>) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    });
    Ok(())
}

fn check(paths: &[PathBuf]) -> ExitCode {
    let report = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| eddy::Error::Io {
            path: "tokio runtime".into(),
            source: e,
        })
        .and_then(|rt| rt.block_on(eddy::check::check(paths)));
    match report {
        Ok(report) => {
            for problem in &report.problems {
                println!("{problem}");
            }
            eprintln!(
                "checked {} files, {} statements: {} problems",
                report.files.len(),
                report.statements,
                report.problems.len()
            );
            if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => report_error(e),
    }
}

fn test(kind: &str, paths: &[PathBuf], verbose: bool) -> ExitCode {
    use eddy::testing::{qtt, sql_files};
    let cases = match kind {
        "qtt" | "rest" => qtt::load(paths),
        "queries" => sql_files::discover(paths)
            .and_then(|tests| tests.iter().map(sql_files::SqlTest::case).collect()),
        _ => {
            eprintln!("error: unknown test kind {kind:?} (known: qtt, rest, queries)");
            return ExitCode::from(1);
        }
    };
    run_tests(cases, kind, verbose)
}

/// `eddy test`: a kind and paths, or one test in ksql-test-runner's form.
fn test_command(args: TestArgs) -> ExitCode {
    match (args.sql.is_empty(), args.input, args.output) {
        (true, None, None) => test(
            args.kind.as_deref().unwrap_or(""),
            &args.paths,
            args.verbose,
        ),
        (false, Some(input), Some(output)) => single_test(args.sql, input, output, args.verbose),
        _ => {
            eprintln!("error: a single test needs --sql, --input and --output");
            ExitCode::from(1)
        }
    }
}

/// ksql-test-runner's form: statements of `sql`, records of `input`, expected `output`.
fn single_test(sql: Vec<PathBuf>, input: PathBuf, output: PathBuf, verbose: bool) -> ExitCode {
    let single = eddy::testing::sql_files::SqlTest { sql, input, output };
    run_tests(single.case().map(|c| vec![c]), "", verbose)
}

/// Runs `cases` (through the HTTP API for `rest`) and prints failures and the totals.
fn run_tests(
    cases: Result<Vec<eddy::testing::qtt::Case>, String>,
    kind: &str,
    verbose: bool,
) -> ExitCode {
    use eddy::testing::{qtt, rest};
    let cases = match cases {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::from(2);
    };
    let results = runtime.block_on(async {
        match kind {
            "rest" => rest::run_all(&cases).await,
            _ => qtt::run_all(&cases).await,
        }
    });
    for (case, outcome) in &results {
        match outcome {
            qtt::Outcome::Failed(why) => println!("FAIL {}: {why}", case.name),
            qtt::Outcome::Skipped(why) if verbose => println!("SKIP {}: {why}", case.name),
            qtt::Outcome::Passed if verbose => println!("ok   {}", case.name),
            _ => {}
        }
    }
    let t = qtt::totals(results.iter().map(|(_, o)| o));
    println!(
        "{} passed, {} failed, {} skipped",
        t.passed, t.failed, t.skipped
    );
    if t.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn report(result: Result<(), eddy::Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report_error(e),
    }
}

/// Prints `e` and picks the exit code from its kind.
fn report_error(e: eddy::Error) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(match e.kind() {
        eddy::ErrorKind::User => 1,
        eddy::ErrorKind::External => 2,
        eddy::ErrorKind::Internal => 3,
    })
}

//! Several servers with one service id are one system: a statement sent to any of them goes
//! through the shared statement log and takes effect on all, with the same query ids; a name
//! created on two servers at once is refused to the second in the log; `TERMINATE` on one
//! stops the query everywhere; a request naming a `commandSequenceNumber` waits for it.
//!
//! Needs the broker the project starts (`docker/kafka.sh start`).

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::{Http, Server, free_port, now_ms};
use serde_json::{Value, json};

/// The names `SHOW <what>` lists on `http` (`streams`, `tables`) or the query ids (`queries`).
async fn names(http: &Http, what: &str) -> Vec<String> {
    let (status, body) = http.ksql(&format!("SHOW {what};")).await;
    assert_eq!(status, 200, "{body}");
    let (list, field) = match what {
        "QUERIES" => ("queries", "id"),
        "TABLES" => ("tables", "name"),
        _ => ("streams", "name"),
    };
    let mut out: Vec<String> = body[0][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[field].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// Waits until `check` holds on `http` (at most 10 s); how long it took.
async fn until<F, Fut>(check: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not on every server after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_sent_to_one_server_act_on_all() {
    let run = now_ms();
    let service = format!("cluster{run}_");
    let (port_a, port_b) = (free_port(), free_port());
    let dir = std::env::temp_dir();
    let a = Server::start_rest(
        &service,
        port_a,
        &dir.join(format!("eddy-cluster-a-{run}.log")),
    );
    let b = Server::start_rest(
        &service,
        port_b,
        &dir.join(format!("eddy-cluster-b-{run}.log")),
    );
    let (http_a, http_b) = (Http::new(port_a), Http::new(port_b));

    // A stream created on A is on B.
    let (status, body) = http_a
        .ksql(&format!(
            "CREATE STREAM clicks (user VARCHAR KEY, n INT) WITH (KAFKA_TOPIC='cluster_{run}', VALUE_FORMAT='JSON', PARTITIONS=4);"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let sequence = body[0]["commandSequenceNumber"].as_i64().unwrap();
    let seen = until(|| async {
        names(&http_b, "STREAMS")
            .await
            .contains(&"CLICKS".to_string())
    })
    .await;

    // A request naming the sequence number sees it at once.
    let (status, body) = http_b
        .post(
            "/ksql",
            json!({"ksql": "SHOW STREAMS;", "commandSequenceNumber": sequence}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("CLICKS"), "{body}");

    one_name_two_servers(&http_a, &http_b).await;

    // A restarted server replays the log: the same catalog.
    b.kill();
    let b = Server::start_rest(
        &service,
        port_b,
        &dir.join(format!("eddy-cluster-b-{run}.log")),
    );
    assert_eq!(
        names(&http_b, "STREAMS").await,
        names(&http_a, "STREAMS").await
    );
    println!("a stream created on one server was on the other after {seen:?}");
    assert!(a.stop().success());
    assert!(b.stop().success());
}

/// The same name created on both servers at once: one wins, in log order, on both; then
/// `TERMINATE` and `DROP` on one act on both.
async fn one_name_two_servers(http_a: &Http, http_b: &Http) {
    let count = "CREATE TABLE per_user AS SELECT user, COUNT(*) AS n FROM clicks GROUP BY user;";
    let total = "CREATE TABLE per_user AS SELECT user, SUM(n) AS n FROM clicks GROUP BY user;";
    let (on_a, on_b) = tokio::join!(http_a.ksql(count), http_b.ksql(total));
    let statuses = [on_a.0, on_b.0];
    assert!(
        statuses.contains(&200) && statuses.contains(&400),
        "{on_a:?} {on_b:?}"
    );
    let refused: &Value = if on_a.0 == 400 { &on_a.1 } else { &on_b.1 };
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{refused}"
    );
    let queries_a = names(http_a, "QUERIES").await;
    until(|| async { names(http_b, "QUERIES").await == queries_a }).await;
    assert_eq!(queries_a.len(), 1, "{queries_a:?}");

    // TERMINATE on B stops it on A too.
    let (status, body) = http_b.ksql(&format!("TERMINATE {};", queries_a[0])).await;
    assert_eq!(status, 200, "{body}");
    until(|| async { names(http_a, "QUERIES").await.is_empty() }).await;
    let (status, body) = http_a.ksql("DROP TABLE per_user;").await;
    assert_eq!(status, 200, "{body}");
    until(|| async {
        !names(http_b, "TABLES")
            .await
            .contains(&"PER_USER".to_string())
    })
    .await;
}

/// How many rows of `per_user` `http` holds itself (a forwarded pull query's answer).
async fn local_share(http: &Http) -> usize {
    let request = json!({"ksql": "SELECT * FROM per_user;", "requestProperties": {"eddy.pull.local.only": true}});
    let (status, text) = http.post("/query", request).await;
    assert_eq!(status, 200, "{text}");
    let elements: Vec<Value> = serde_json::from_str(&text).unwrap();
    elements.iter().filter(|e| e.get("row").is_some()).count()
}

/// Waits until both servers hold part of `per_user`'s `users` keys, and together all.
async fn both_hold_a_share(http_a: &Http, http_b: &Http, users: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (share_a, share_b) = (local_share(http_a).await, local_share(http_b).await);
        if share_a > 0 && share_b > 0 && share_a + share_b == users {
            println!("the servers hold {share_a} and {share_b} of {users} keys");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "shares {share_a} + {share_b} of {users}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Two servers split a table's partitions; a pull query sent to either sees every key, a
/// key lookup finds its key whichever server owns it, and `/clusterStatus` lists both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_queries_to_any_server_see_the_whole_table() {
    let run = now_ms();
    let service = format!("clusterpull{run}_");
    let (port_a, port_b) = (free_port(), free_port());
    let dir = std::env::temp_dir();
    let a = Server::start_rest(
        &service,
        port_a,
        &dir.join(format!("eddy-cpull-a-{run}.log")),
    );
    let b = Server::start_rest(
        &service,
        port_b,
        &dir.join(format!("eddy-cpull-b-{run}.log")),
    );
    let (http_a, http_b) = (Http::new(port_a), Http::new(port_b));
    let topic = format!("cluster_pull_{run}");
    let (status, body) = http_a
        .ksql(&format!(
            "CREATE STREAM visits (user VARCHAR KEY, n INT) WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON', PARTITIONS=4);
             CREATE TABLE per_user WITH (KAFKA_TOPIC='{topic}_per_user') AS SELECT user, COUNT(*) AS n FROM visits GROUP BY user;"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let users = 200;
    let records: Vec<(String, &[u8], i64)> = (0..users)
        .map(|u| (format!("u{u}"), br#"{"N":1}"#.as_slice(), run))
        .collect();
    let refs: Vec<(&str, &[u8], i64)> = records
        .iter()
        .map(|(k, v, t)| (k.as_str(), *v, *t))
        .collect();
    common::produce(&topic, &refs);
    both_hold_a_share(&http_a, &http_b, users).await;
    // Every key from either server, the other's share forwarded.
    for http in [&http_a, &http_b] {
        let rows = http.pull("SELECT * FROM per_user;").await;
        assert_eq!(rows.len(), users);
        assert!(rows.iter().all(|r| r[1] == 1), "{rows:?}");
        for u in [0, 7, 42, 199] {
            let rows = http
                .pull(&format!("SELECT * FROM per_user WHERE user = 'u{u}';"))
                .await;
            assert_eq!(rows, vec![json!([format!("u{u}"), 1])]);
        }
    }
    assert_eq!(
        http_b.pull("SELECT * FROM per_user LIMIT 5;").await.len(),
        5
    );
    both_alive_in_cluster_status(&http_a).await;
    assert!(a.stop().success());
    assert!(b.stop().success());
}

/// `/clusterStatus` lists both servers, alive, each running some of the table's four
/// partitions and together all of them.
async fn both_alive_in_cluster_status(http: &Http) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = cluster_status(http).await;
        let hosts = body["clusterStatus"].as_object().unwrap();
        assert_eq!(hosts.len(), 2, "{body}");
        assert!(hosts.values().all(|h| h["hostAlive"] == true), "{body}");
        let shares: Vec<Vec<i64>> = hosts
            .values()
            .map(|h| partitions_of(h, "CTAS_PER_USER", "activePartitions"))
            .collect();
        let mut all: Vec<i64> = shares.concat();
        all.sort_unstable();
        if all == [0, 1, 2, 3] && shares.iter().all(|s| !s.is_empty()) {
            return;
        }
        assert!(Instant::now() < deadline, "active partitions: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The body of `GET /clusterStatus`.
async fn cluster_status(http: &Http) -> Value {
    let response = http
        .client
        .get(format!("{}/clusterStatus", http.base))
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

/// The partitions a `/clusterStatus` host lists for the query whose id starts with `query`,
/// under `field` (`activePartitions`, `standByPartitions`).
fn partitions_of(host: &Value, query: &str, field: &str) -> Vec<i64> {
    let queries = host["activeStandbyPerQuery"].as_object().unwrap();
    let mut out: Vec<i64> = queries
        .iter()
        .filter(|(id, _)| id.starts_with(query))
        .flat_map(|(_, q)| q[field].as_array().unwrap().clone())
        .map(|p| p["partition"].as_i64().unwrap())
        .collect();
    out.sort_unstable();
    out
}

/// Tasks a server's log says it was assigned and restored so far.
fn tasks_assigned(log: &std::path::Path) -> usize {
    restores(log).len()
}

/// A server that stops (SIGTERM) leaves its queries' groups: the other takes its partitions
/// over at once (not after the session timeout), restores their state, and the counts stay
/// exact while a producer writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_hands_its_partitions_over() {
    let run = now_ms();
    let service = format!("handover{run}_");
    let topic = format!("handover_{run}");
    let (dir, sql) = counting_queries("handover", run, &topic, "");
    let (port_a, port_b) = (free_port(), free_port());
    let (log_a, log_b) = (dir.join("a.log"), dir.join("b.log"));
    let a = Server::start_headless_dynamic(&service, port_a, &sql, &log_a);
    let b = Server::start_headless_dynamic(&service, port_b, &sql, &log_b);
    let (keys, records) = (50, 3_000);
    // 30 batches of 100 records, one every 100 ms: the stop comes while they flow.
    let producer = std::thread::spawn(move || {
        for batch in 0..records / 100 {
            produce_hits(&topic, keys, batch * 100);
            std::thread::park_timeout(Duration::from_millis(100));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while tasks_assigned(&log_a) == 0 || tasks_assigned(&log_b) == 0 {
        assert!(Instant::now() < deadline, "both servers never ran tasks");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = tasks_assigned(&log_a);
    let stopping = Instant::now();
    assert!(b.stop().success());
    let stopped = stopping.elapsed();
    while tasks_assigned(&log_a) == before {
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "no handover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let handover = stopping.elapsed();
    producer.join().unwrap();
    counts_are_exact(&Http::new(port_a), keys, records / keys).await;
    println!(
        "SIGTERM: the server stopped in {stopped:?}; the other ran its partitions {handover:?} after the signal"
    );
    assert!(a.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until every one of `keys` keys of `hits_per_key` counts `each` (at most 60 s).
async fn counts_are_exact(http: &Http, keys: usize, each: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = http.poll_pull("SELECT * FROM hits_per_key;").await;
        let rows = rows.unwrap_or_default();
        if rows.len() == keys && rows.iter().all(|r| r[1] == each) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "counts after the handover: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `num.stream.threads=2`: one server runs a query's four tasks on two threads (two members
/// of its group); a SIGKILL and a restart leave the counts exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_threads_split_a_query_and_stay_exact() {
    let run = now_ms();
    let service = format!("threads{run}_");
    let topic = format!("threads_{run}");
    let (dir, sql) = counting_queries(
        "threads",
        run,
        &topic,
        "SET 'ksql.streams.num.stream.threads'='2';",
    );
    let port = free_port();
    let log = dir.join("server.log");
    let server = Server::start_headless(&service, port, &sql, &log);
    let (keys, records) = (50, 3_000);
    let write = |from: usize, to: usize| {
        for batch in from / 100..to / 100 {
            produce_hits(&topic, keys, batch * 100);
        }
    };
    write(0, records / 2);
    // Both threads' members come to run tasks (the second's identity ends in `-1`).
    let second = format!("member={service}-{port}-1");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let (theirs, mine): (Vec<&str>, Vec<&str>) = text
            .lines()
            .filter(|l| l.contains("task assigned and restored"))
            .partition(|l| l.contains(&second));
        if !mine.is_empty() && !theirs.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tasks per thread: {} and {}",
            mine.len(),
            theirs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill();
    write(records / 2, records);
    let server = Server::start_headless(&service, port, &sql, &log);
    counts_are_exact(&Http::new(port), keys, records / keys).await;
    assert!(server.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes 100 records to `topic` from record number `first` on, over `keys` keys.
fn produce_hits(topic: &str, keys: usize, first: usize) {
    let rows: Vec<String> = (first..first + 100)
        .map(|i| format!("k{}", i % keys))
        .collect();
    let refs: Vec<(&str, &[u8], i64)> = rows
        .iter()
        .map(|k| (k.as_str(), br#"{"N":1}"#.as_slice(), now_ms()))
        .collect();
    common::produce(topic, &refs);
}

/// A folder of its own with `counts.sql`: a stream `hits` over a new 4-partition `topic`
/// and the table `hits_per_key` counting it (its sink topic the run's own too: tests running
/// at once must not restore each other's rows), `settings` between them.
fn counting_queries(
    name: &str,
    run: i64,
    topic: &str,
    settings: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("eddy-{name}-{run}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sql = dir.join("counts.sql");
    std::fs::write(
        &sql,
        format!(
            "CREATE STREAM hits (k VARCHAR KEY, n INT) WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON', PARTITIONS=4);
             {settings}
             CREATE TABLE hits_per_key WITH (KAFKA_TOPIC='{topic}_counts') AS SELECT k, COUNT(*) AS n FROM hits GROUP BY k;"
        ),
    )
    .unwrap();
    (dir, sql)
}

/// `num.standby.replicas=1` with two servers: each keeps a warm copy of the other's tasks
/// (`/clusterStatus` lists them as standby partitions), so when one stops (SIGTERM) and
/// later dies (SIGKILL), the other resumes its partitions from the copies, reading only the
/// changelog written since; the counts stay exact. Printed: the handover times and how long
/// the restores took. `EDDY_STANDBY_KEYS` sets the state's size (CI: 20,000 keys) and
/// `EDDY_STANDBY_REPLICAS=0` runs it without standbys, for the figures by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_replicas_keep_state_warm_for_failover() {
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (keys, replicas) = (
        number("EDDY_STANDBY_KEYS", 20_000),
        number("EDDY_STANDBY_REPLICAS", 1),
    );
    let run = now_ms();
    let service = format!("standby{run}_");
    let topic = format!("standby_{run}");
    let settings = format!("SET 'ksql.streams.num.standby.replicas'='{replicas}';");
    let (dir, sql) = counting_queries("standby", run, &topic, &settings);
    let (port_a, port_b) = (free_port(), free_port());
    let (log_a, log_b) = (dir.join("a.log"), dir.join("b.log"));
    let a = Server::start_headless_dynamic(&service, port_a, &sql, &log_a);
    let b = Server::start_headless_dynamic(&service, port_b, &sql, &log_b);
    let (http_a, http_b) = (Http::new(port_a), Http::new(port_b));
    produce_each_key(&topic, keys);
    settled((&http_a, &http_a), keys, 1, replicas).await;

    let before = restores(&log_a).len();
    let stopping = Instant::now();
    assert!(b.stop().success());
    let (sigterm, sigterm_restores) = taken_over(&log_a, before, stopping).await;
    let b = Server::start_headless_dynamic(&service, port_b, &sql, &log_b);
    both_hold_tasks(&log_b).await;
    produce_each_key(&topic, keys);
    settled((&http_b, &http_a), keys, 2, replicas).await;
    let before = restores(&log_a).len();
    let killed = Instant::now();
    b.kill();
    let standby_read = if replicas > 0 {
        format!(
            "; pull queries read the standbys {:?} after the SIGKILL",
            read_from_standbys(&http_a, keys, 2, killed).await
        )
    } else {
        String::new()
    };
    let (sigkill, sigkill_restores) = taken_over(&log_a, before, killed).await;
    counts_are_exact(&http_a, keys, 2).await;
    println!(
        "{replicas} standby replicas, {keys} keys: after SIGTERM the other server ran the partitions in {sigterm:?} ({sigterm_restores:?}); after SIGKILL in {sigkill:?} ({sigkill_restores:?}); restores took {:?} ms{standby_read}",
        restore_millis(&log_a)
    );
    if replicas > 0 {
        let warm = |restores: &[String]| restores.iter().all(|r| r.contains("warm=true"));
        assert!(
            warm(&sigterm_restores) && warm(&sigkill_restores),
            "restored cold: {sigterm_restores:?} {sigkill_restores:?}"
        );
    }
    assert!(a.stop().success());
    let _ = (http_b, std::fs::remove_dir_all(&dir));
}

/// While the killed server's partitions have no live task (until the session timeout),
/// a pull query is never answered with part of the table: without standby reads it fails
/// with 503 (or, once the tasks moved, is whole), and with
/// `ksql.query.pull.enable.standby.reads` the standby copies answer it, every key once
/// with its count; a key lookup of a key on a partition the survivor runs is answered. How
/// long after `killed` the standbys answered.
async fn read_from_standbys(http: &Http, keys: usize, each: usize, killed: Instant) -> Duration {
    let sql = "SELECT * FROM hits_per_key;";
    let whole = |status: u16, text: &str| {
        if status != 200 {
            return false;
        }
        let rows = common::rows_of(text);
        let distinct: std::collections::BTreeSet<String> =
            rows.iter().map(|r| r[0].to_string()).collect();
        assert!(
            rows.len() == keys && distinct.len() == keys && rows.iter().all(|r| r[1] == each),
            "a pull query answered with part of the table: {} rows, {} keys",
            rows.len(),
            distinct.len()
        );
        true
    };
    let standby_reads = json!({
        "ksql": sql,
        "streamsProperties": { "ksql.query.pull.enable.standby.reads": true },
    });
    let read = loop {
        let (status, text) = http.post("/query", standby_reads.clone()).await;
        if whole(status, &text) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "standby reads: {status} {text:.300}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (status, text) = http.post("/query", json!({ "ksql": sql })).await;
    assert!(
        status == 503 || whole(status, &text),
        "without standby reads: {status} {text:.300}"
    );
    // A key lookup needs only its key's partition: one the survivor runs is answered.
    let status = cluster_status(http).await;
    let me = &status["clusterStatus"][http.base.trim_start_matches("http://")];
    let me = partitions_of(me, "CTAS_HITS_PER_KEY", "activePartitions");
    let key = (0..keys)
        .map(|i| format!("k{i}"))
        .find(|k| {
            me.contains(&i64::from(eddy::kafka::partitioner::partition_for(
                k.as_bytes(),
                4,
            )))
        })
        .unwrap();
    let rows = http
        .pull(&format!("SELECT * FROM hits_per_key WHERE k = '{key}';"))
        .await;
    assert_eq!(rows, vec![json!([key, each])]);
    read
}

/// Waits until every key counts `each` on the first server and, with standbys, until the
/// second's `/clusterStatus` shows them mirroring the active tasks.
async fn settled((counts, status): (&Http, &Http), keys: usize, each: usize, replicas: usize) {
    counts_are_exact(counts, keys, each).await;
    if replicas > 0 {
        standbys_mirror_actives(status).await;
    }
}

/// The server's "task assigned and restored" lines so far.
fn restores(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("task assigned and restored"))
        .map(|l| {
            l.split("restored")
                .nth(1)
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect()
}

/// How long each of the server's restores took (its "tasks running" lines), in ms.
fn restore_millis(log: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("tasks running"))
        .filter_map(|l| l.split("millis=").nth(1)?.trim().parse().ok())
        .collect()
}

/// Waits until the server logging to `log` restored more tasks than `before` (at most 60 s);
/// how long after `since`, and the new restores.
async fn taken_over(
    log: &std::path::Path,
    before: usize,
    since: Instant,
) -> (Duration, Vec<String>) {
    loop {
        let now = restores(log);
        if now.len() > before {
            // The rest of the same assignment is logged at once.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return (since.elapsed(), restores(log)[before..].to_vec());
        }
        assert!(since.elapsed() < Duration::from_secs(60), "no take-over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server logging to `log` runs tasks (at most 60 s).
async fn both_hold_tasks(log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tasks_assigned(log) == 0 {
        assert!(Instant::now() < deadline, "no tasks on {log:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `/clusterStatus` shows both servers running tasks of the counting query and
/// each keeping standbys of exactly the other's, caught up (at most 30 s).
async fn standbys_mirror_actives(http: &Http) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = cluster_status(http).await;
        let hosts: Vec<&Value> = body["clusterStatus"]
            .as_object()
            .unwrap()
            .values()
            .collect();
        let of = |h: &Value, f: &str| partitions_of(h, "CTAS_HITS_PER_KEY", f);
        if hosts.len() == 2
            && !of(hosts[0], "activePartitions").is_empty()
            && !of(hosts[1], "activePartitions").is_empty()
            && of(hosts[0], "activePartitions") == of(hosts[1], "standByPartitions")
            && of(hosts[1], "activePartitions") == of(hosts[0], "standByPartitions")
            && hosts
                .iter()
                .all(|h| caught_up(h, &of(h, "standByPartitions")))
        {
            return;
        }
        assert!(Instant::now() < deadline, "standbys: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a `/clusterStatus` host's standby copies of the counting query's `partitions`
/// are caught up (`hostStoreLags`: an offset lag of 0 reported for each).
fn caught_up(host: &Value, partitions: &[i64]) -> bool {
    let stores = host["hostStoreLags"]["stateStoreLags"].as_object().unwrap();
    let Some((_, store)) = stores
        .iter()
        .find(|(id, _)| id.starts_with("CTAS_HITS_PER_KEY"))
    else {
        return false;
    };
    partitions
        .iter()
        .all(|p| store["lagByPartition"][p.to_string()]["offsetLag"] == 0)
}

/// One record of each of `keys` keys to `topic`.
fn produce_each_key(topic: &str, keys: usize) {
    let rows: Vec<String> = (0..keys).map(|i| format!("k{i}")).collect();
    let refs: Vec<(&str, &[u8], i64)> = rows
        .iter()
        .map(|k| (k.as_str(), br#"{"N":1}"#.as_slice(), now_ms()))
        .collect();
    common::produce(topic, &refs);
}

//! ksqlDB's REST functional tests ("RQTT") run through Eddy's real HTTP API:
//! `eddy test rest PATH...`.
//!
//! Each case gets a fresh server (the REST API of [`crate::server::rest`] over the in-memory
//! driver) on a local port, and is driven over HTTP the way ksqlDB's `RestTestExecutor`
//! does: the statements before the first `SELECT` go in one `/ksql` request, then the
//! inputs are produced, then each `SELECT` goes to `/query` (push queries read from the
//! earliest offset; with `waitForActivePushQuery` the inputs are produced once the push
//! query runs). Responses are compared partially, as ksqlDB does: only the fields the
//! expected response names, `|starts_with` suffixes, `{STATEMENT}` placeholders, rows in
//! any order unless `verifyOrder`. Output topics are then checked like QTT's. Case files,
//! expansion and outcomes are [`super::qtt`]'s.

use std::sync::Arc;
use std::time::Duration;

use prost_reflect::ReflectMessage;

use serde_json::{Map, Value, json};

use super::memory::MemoryKafka;
use super::qtt::{self, Case, Outcome, json_matches};
use crate::engine::Engine;
use crate::server::rest::{AppState, PROTOBUF, ServerInfo};

/// How long a push query's response may take to finish.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

type State = Arc<AppState<MemoryKafka>>;

/// A running test server.
struct TestServer {
    state: State,
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    async fn start(case: &Case) -> Result<Self, String> {
        let engine = Engine::new(MemoryKafka::default());
        qtt::create_topics(case, engine.runtime()).await;
        qtt::register_schemas(case, engine.registry());
        let state = AppState::new(
            engine,
            ServerInfo {
                service_id: "default_".into(),
                headless: false,
                properties: Vec::new(),
                // As ksqlDB's REST test executor configures its server.
                scalable_push: true,
                limits: crate::server::http::HttpLimits::default(),
                cluster: None,
                standby_reads: false,
                auth: None,
            },
            None,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serve_state = Arc::clone(&state);
        tokio::spawn(async move {
            let _ = crate::server::rest::serve(serve_state, listener, async {
                let _ = stopped.await;
            })
            .await;
        });
        Ok(Self {
            state,
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
            stop: Some(stop),
        })
    }

    /// POSTs `body` to `path` asking for the content type `accept`; returns the status and
    /// the body text.
    async fn post_accepting(
        &self,
        path: &str,
        body: &Value,
        accept: &str,
    ) -> Result<(u16, String), String> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Accept", accept)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = tokio::time::timeout(PUSH_TIMEOUT, response.text())
            .await
            .map_err(|_| format!("{path}: no complete response within {PUSH_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        Ok((status, text))
    }

    /// Produces the case's inputs, each processed before the next.
    async fn produce_inputs(&self, case: &Case) -> Result<(), String> {
        let mut engine = self.state.engine.lock().await;
        for input in case.spec["inputs"].as_array().into_iter().flatten() {
            let record = qtt::input_record(input, &engine)?;
            let runtime = engine.runtime_mut();
            runtime.produce(record).map_err(|e| e.to_string())?;
            runtime.run_until_idle().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.state.close_all();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A failed request: its HTTP status and error body.
type Failure = (u16, Value);

/// Runs one case through a fresh server.
pub async fn run(case: &Case) -> Outcome {
    if case.spec["enabled"] == Value::Bool(false) {
        return Outcome::Skipped("disabled".into());
    }
    match run_case(case).await {
        Ok(()) => Outcome::Passed,
        Err(why) => Outcome::Failed(why),
    }
}

async fn run_case(case: &Case) -> Result<(), String> {
    let server = TestServer::start(case).await?;
    let split = case
        .statements
        .iter()
        .position(|s| s.trim_start().to_ascii_uppercase().starts_with("SELECT "))
        .unwrap_or(case.statements.len());
    let (admin, queries) = case.statements.split_at(split);
    let properties = case.spec["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut responses = Vec::new();
    let outcome = async {
        if !admin.is_empty() {
            let body = json!({"ksql": admin.join("\n"), "streamsProperties": properties});
            let entities = request(&server, "/ksql", &body).await?;
            responses.extend(
                entities
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| json!({ "admin": e })),
            );
        }
        let wait = case.spec["inputConditions"]["waitForActivePushQuery"] == true;
        if !wait {
            server.produce_inputs(case).await.map_err(internal)?;
        }
        for text in queries {
            let response = query(&server, text, &properties, wait.then_some(case)).await?;
            responses.push(json!({ "query": response }));
        }
        if case.spec["testPullWithProtoFormat"] == true {
            for text in queries {
                let response = proto_query(&server, text, &properties).await?;
                responses.push(json!({ "queryProto": response }));
            }
        }
        Ok::<(), Failure>(())
    }
    .await;
    match (outcome, case.spec.get("expectedError")) {
        (Err(failure), Some(expected)) => check_error(expected, &failure),
        (Err((status, body)), None) => Err(format!("request failed ({status}): {body}")),
        (Ok(()), Some(expected)) => Err(format!(
            "expected an error {}, but every request succeeded",
            expected["message"]
        )),
        (Ok(()), None) => {
            check_responses(case, &responses)?;
            if case.spec["outputs"].is_array() {
                qtt::verify_outputs(case, &*server.state.engine.lock().await)?;
            }
            Ok(())
        }
    }
}

/// Sends a pull query asking for Protobuf rows; returns the response's elements, rows in
/// text format.
async fn proto_query(
    server: &TestServer,
    text: &str,
    properties: &Map<String, Value>,
) -> Result<Value, Failure> {
    let body = json!({"ksql": text, "streamsProperties": properties});
    let (status, answer) =
        (server.post_accepting("/query", &body, PROTOBUF).await).map_err(internal)?;
    let parsed: Value =
        serde_json::from_str(&answer).map_err(|e| internal(format!("{e}: {answer}")))?;
    if status != 200 {
        return Err((status, parsed));
    }
    proto_rows(&parsed).map_err(internal)
}

/// A Protobuf pull query's response with each row's message in text format, as ksqlDB's
/// test runner compares them.
fn proto_rows(response: &Value) -> Result<Value, String> {
    use base64::Engine as _;
    let elements = response.as_array().ok_or("not a JSON array")?;
    let schema = elements
        .first()
        .and_then(|h| h["header"]["protoSchema"].as_str())
        .ok_or("no protoSchema in the header")?;
    let message = crate::format::protobuf::compile(schema, None)?;
    (elements.iter())
        .map(|e| match e["row"]["protobufBytes"].as_str() {
            Some(b64) => {
                let bytes = (base64::engine::general_purpose::STANDARD.decode(b64))
                    .map_err(|e| e.to_string())?;
                let row = crate::format::protobuf::decode(&message, &bytes)?;
                let mut text = String::new();
                text_format(&row, "", &mut text);
                Ok(json!({ "row": text }))
            }
            None => Ok(e.clone()),
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Value::Array)
}

/// A message in Protobuf's text format as Java's `TextFormat` prints it: set fields one per
/// line, each element of a repeated field as a field of its own, messages in braces.
fn text_format(message: &prost_reflect::DynamicMessage, indent: &str, out: &mut String) {
    use prost_reflect::Value as V;
    for field in message.descriptor().fields() {
        if !message.has_field(&field) {
            continue;
        }
        let value = message.get_field(&field);
        let items: Vec<V> = match value.as_ref() {
            V::List(items) => items.clone(),
            V::Map(entries) => entries
                .iter()
                .map(|(k, v)| {
                    let entry = field.kind();
                    let mut m = prost_reflect::DynamicMessage::new(
                        entry
                            .as_message()
                            .cloned()
                            .unwrap_or_else(|| message.descriptor()),
                    );
                    m.set_field_by_number(1, k.clone().into());
                    m.set_field_by_number(2, v.clone());
                    V::Message(m)
                })
                .collect(),
            other => vec![other.clone()],
        };
        for item in items {
            match item {
                V::Message(inner) => {
                    out.push_str(&format!("{indent}{} {{\n", field.name()));
                    text_format(&inner, &format!("{indent}  "), out);
                    out.push_str(&format!("{indent}}}\n"));
                }
                scalar => out.push_str(&format!(
                    "{indent}{}: {}\n",
                    field.name(),
                    text_scalar(&scalar, &field)
                )),
            }
        }
    }
}

fn text_scalar(value: &prost_reflect::Value, field: &prost_reflect::FieldDescriptor) -> String {
    use prost_reflect::Value as V;
    let quoted = |bytes: &[u8]| {
        let mut s = String::from("\"");
        for b in bytes {
            match b {
                b'"' => s.push_str("\\\""),
                b'\\' => s.push_str("\\\\"),
                b'\n' => s.push_str("\\n"),
                0x20..=0x7e => s.push(*b as char),
                other => s.push_str(&format!("\\{other:03o}")),
            }
        }
        s.push('"');
        s
    };
    match value {
        V::String(text) => quoted(text.as_bytes()),
        V::Bytes(bytes) => quoted(bytes),
        V::F64(f) => format!("{f:?}"),
        V::F32(f) => format!("{f:?}"),
        V::EnumNumber(n) => match field.kind().as_enum().and_then(|e| e.get_value(*n)) {
            Some(v) => v.name().to_string(),
            None => n.to_string(),
        },
        V::Bool(b) => b.to_string(),
        V::I32(n) => n.to_string(),
        V::I64(n) => n.to_string(),
        V::U32(n) => n.to_string(),
        V::U64(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn internal(why: String) -> Failure {
    (0, json!({ "message": why }))
}

/// POSTs and parses a JSON response; a non-200 status is a failure.
async fn request(server: &TestServer, path: &str, body: &Value) -> Result<Value, Failure> {
    request_as(server, path, body, crate::server::rest::KSQL_JSON).await
}

/// [`request`] asking for the content type `accept`.
async fn request_as(
    server: &TestServer,
    path: &str,
    body: &Value,
    accept: &str,
) -> Result<Value, Failure> {
    let (status, text) = (server.post_accepting(path, body, accept).await).map_err(internal)?;
    let parsed: Value =
        serde_json::from_str(&text).map_err(|e| internal(format!("{e}: {text}")))?;
    if status == 200 {
        Ok(parsed)
    } else {
        Err((status, parsed))
    }
}

/// Sends one `SELECT` to `/query`; with `inputs_for`, produces that case's inputs once the
/// push query runs. Returns the response's elements.
async fn query(
    server: &TestServer,
    text: &str,
    properties: &Map<String, Value>,
    inputs_for: Option<&Case>,
) -> Result<Value, Failure> {
    let mut properties = properties.clone();
    properties
        .entry("auto.offset.reset")
        .or_insert_with(|| json!("earliest"));
    let body = json!({"ksql": text, "streamsProperties": properties});
    let Some(case) = inputs_for else {
        return request(server, "/query", &body).await;
    };
    let sent = request(server, "/query", &body);
    let produce = async {
        for _ in 0..100 {
            if !server.state.engine.lock().await.push_queries().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.produce_inputs(case).await
    };
    let (response, produced) = tokio::join!(sent, produce);
    produced.map_err(internal)?;
    response
}

/// `expectedError`: the status, the message (a substring) and the body's type.
fn check_error(expected: &Value, (status, body): &Failure) -> Result<(), String> {
    let message = body["message"].as_str().unwrap_or_default();
    if let Some(want) = expected["message"].as_str()
        && !message.contains(want)
    {
        return Err(format!(
            "expected error containing {want:?}, got {message:?} ({status})"
        ));
    }
    if let Some(want) = expected["status"].as_u64()
        && u64::from(*status) != want
    {
        return Err(format!("expected status {want}, got {status}: {message}"));
    }
    let statement_error = body["@type"] == "statement_error";
    if expected["type"]
        .as_str()
        .is_some_and(|t| t.ends_with("KsqlStatementErrorMessage"))
        && !statement_error
    {
        return Err(format!("expected a statement error, got {body}"));
    }
    Ok(())
}

fn check_responses(case: &Case, actual: &[Value]) -> Result<(), String> {
    let Some(expected) = case.spec["responses"].as_array() else {
        return Ok(());
    };
    if expected.len() != actual.len() {
        return Err(format!(
            "expected {} responses, got {}: {}",
            expected.len(),
            actual.len(),
            Value::Array(actual.to_vec())
        ));
    }
    let ordered = case.spec["outputConditions"]["verifyOrder"] == true;
    for (i, (want, got)) in expected.iter().zip(actual).enumerate() {
        let statement = case.statements.get(i).map_or("", String::as_str);
        let matched = match (want.get("query"), got.get("query")) {
            (Some(w), Some(g)) => query_matches(w, g, ordered, statement),
            _ => match (want.get("queryProto"), got.get("queryProto")) {
                (Some(w), Some(g)) => query_matches(w, g, ordered, statement),
                _ => partial_match(want, got, statement),
            },
        };
        if !matched {
            return Err(format!("response {i}: expected {want}, got {got}"));
        }
    }
    Ok(())
}

/// A query response: same number of elements; the header and final message in place,
/// rows in any order (unless `ordered`).
fn query_matches(want: &Value, got: &Value, ordered: bool, statement: &str) -> bool {
    let (Some(want), Some(got)) = (want.as_array(), got.as_array()) else {
        return false;
    };
    if want.len() != got.len() {
        return false;
    }
    let is_row = |v: &Value| v.get("row").is_some();
    let mut unused: Vec<&Value> = got.iter().filter(|g| is_row(g)).collect();
    for (w, g) in want.iter().zip(got) {
        if !is_row(w) || ordered {
            if !partial_match(w, g, statement) {
                return false;
            }
            continue;
        }
        match unused.iter().position(|g| partial_match(w, g, statement)) {
            Some(i) => {
                unused.remove(i);
            }
            None => return false,
        }
    }
    true
}

/// ksqlDB's partial comparison: every field of `want` matches in `got`.
fn partial_match(want: &Value, got: &Value, statement: &str) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            w.iter()
                .all(|(key, value)| match key.strip_suffix("|starts_with") {
                    Some(field) => {
                        let prefix = value.as_str().unwrap_or_default();
                        g.get(field)
                            .and_then(Value::as_str)
                            .is_some_and(|s| s.starts_with(prefix))
                    }
                    None => g
                        .get(key)
                        .is_some_and(|actual| partial_match(value, actual, statement)),
                })
        }
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| partial_match(a, b, statement))
        }
        (Value::String(w), Value::String(g)) if w.contains("{STATEMENT}") => {
            *g == w.replace("{STATEMENT}", statement)
        }
        _ => json_matches(want, got),
    }
}

/// Runs every case, returning each outcome.
pub async fn run_all(cases: &[Case]) -> Vec<(&Case, Outcome)> {
    let mut out = Vec::with_capacity(cases.len());
    for case in cases {
        out.push((case, run(case).await));
    }
    out
}

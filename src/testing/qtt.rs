//! ksqlDB's functional tests ("QTT") run on the in-memory driver: `eddy test qtt PATH...`.
//!
//! A case file holds `tests`: statements, input records, expected output records (or an
//! expected error), and post-conditions on the catalog. Cases are expanded over `format`
//! (`{FORMAT}` in statements) and `config` (`{CONFIG}` in properties). Each case gets a fresh
//! engine; inputs are encoded with the formats of the source that reads their topic, outputs
//! decoded with the formats of the source written to theirs, and compared with ksqlDB's rules:
//! same count and order per topic, numbers within 1e-6, windows and timestamps when given.
//! An expected error passes when some statement fails with a message containing it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::memory::MemoryKafka;
use crate::catalog::{ColumnKind, Source, WindowInfo};
use crate::engine::Engine;
use crate::format::registry::{Reference, Schema, SchemaKind, SchemaRegistry};
use crate::format::{Format, framed, json, kafka};
use crate::record::Record;
use crate::sql::Statement;

/// One runnable case (after `format` and `config` expansion).
#[derive(Debug, Clone)]
pub struct Case {
    /// The file it came from (file name only).
    pub file: String,
    /// `<file stem> - <name>[ - <FORMAT>][ - <config>]`, as ksqlDB names it.
    pub name: String,
    /// Statements, with `{FORMAT}` replaced.
    pub statements: Vec<String>,
    /// The case as written.
    pub spec: Value,
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// As expected.
    Passed,
    /// Not as expected: why.
    Failed(String),
    /// Not run: why (disabled, or needs something Eddy lacks, e.g. a schema registry).
    Skipped(String),
}

/// Reads the cases of every `.json` file under `paths`, in name order.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Case>, String> {
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files)?;
    }
    let mut cases = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.trim_end_matches(".json").to_string();
        for spec in json["tests"].as_array().into_iter().flatten() {
            cases.extend(expand(&name, &stem, spec));
        }
    }
    Ok(cases)
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() || entry.extension().is_some_and(|e| e == "json") {
                collect_files(&entry, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// One case per format (outer) and config (inner).
fn expand(file: &str, stem: &str, spec: &Value) -> Vec<Case> {
    let base = format!("{stem} - {}", spec["name"].as_str().unwrap_or(""));
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let formats = strings(&spec["format"]);
    let configs = strings(&spec["config"]);
    let formats: Vec<Option<String>> = if formats.is_empty() {
        vec![None]
    } else {
        formats.into_iter().map(Some).collect()
    };
    let configs: Vec<Option<String>> = if configs.is_empty() {
        vec![None]
    } else {
        configs.into_iter().map(Some).collect()
    };
    let mut out = Vec::new();
    for format in &formats {
        for config in &configs {
            let mut name = base.clone();
            let mut spec = spec.clone();
            if let Some(f) = format {
                name.push_str(&format!(" - {f}"));
            }
            if let Some(c) = config {
                name.push_str(&format!(" - {c}"));
                if let Some(props) = spec["properties"].as_object_mut() {
                    for v in props.values_mut() {
                        if v == "{CONFIG}" {
                            *v = Value::String(c.clone());
                        }
                    }
                }
            }
            let statements = strings(&spec["statements"])
                .into_iter()
                .map(|s| match format {
                    Some(f) => s.replace("{FORMAT}", f),
                    None => s,
                })
                .collect();
            out.push(Case {
                file: file.to_string(),
                name,
                statements,
                spec,
            });
        }
    }
    out
}

/// Runs one case on a fresh in-memory engine.
pub async fn run(case: &Case) -> Outcome {
    run_with(case, false).await
}

/// Runs one case; with `restarts`, every query whose state is checkpointed is restarted from
/// its changelog after each input record (as if the server restarted), which must not change
/// any output.
pub async fn run_with(case: &Case, restarts: bool) -> Outcome {
    if case.spec["enabled"] == Value::Bool(false) {
        return Outcome::Skipped("disabled".into());
    }
    let mut engine = Engine::new(MemoryKafka::default());
    create_topics(case, engine.runtime()).await;
    register_schemas(case, engine.registry());
    let expected_error = case.spec.get("expectedException").and_then(|e| {
        e["message"]
            .as_str()
            .map(String::from)
            .or(Some(String::new()))
    });
    match (execute(case, &mut engine).await, expected_error) {
        (Err(actual), Some(expected)) if actual.contains(&expected) => return Outcome::Passed,
        (Err(actual), Some(expected)) => {
            return Outcome::Failed(format!(
                "expected error containing {expected:?}, got {actual:?}"
            ));
        }
        (Err(actual), None) => return Outcome::Failed(actual),
        (Ok(()), Some(expected)) => {
            if let Err(actual) = feed(case, &mut engine, restarts) {
                return if actual.contains(&expected) {
                    Outcome::Passed
                } else {
                    Outcome::Failed(actual)
                };
            }
            return Outcome::Failed(format!(
                "expected an error containing {expected:?}, but every statement succeeded"
            ));
        }
        (Ok(()), None) => {}
    }
    if let Err(e) = feed(case, &mut engine, restarts) {
        return Outcome::Failed(e);
    }
    match verify_outputs(case, &engine).and_then(|()| verify_post(case, &engine)) {
        Ok(()) => Outcome::Passed,
        Err(e) => Outcome::Failed(e),
    }
}

/// Pre-creates every topic the case names, with its partitions (1 by default): in `topics`,
/// in records, and in `KAFKA_TOPIC` of `CREATE STREAM/TABLE` statements, as ksqlDB's test
/// driver does.
pub(crate) async fn create_topics(case: &Case, runtime: &MemoryKafka) {
    use crate::engine::Runtime;
    let spec = &case.spec;
    let mut variables = crate::sql::variables::Variables::new();
    for text in &case.statements {
        for (_, statement) in crate::sql::parse_script(text, &mut variables).unwrap_or_default() {
            if let Statement::CreateSource(c) = statement
                && let Some(topic) = c.properties.get_str("KAFKA_TOPIC")
            {
                let partitions = c
                    .properties
                    .get_str("PARTITIONS")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1);
                let _ = runtime.create_topic(&topic, partitions).await;
            }
        }
    }
    for topic in spec["topics"].as_array().into_iter().flatten() {
        if let Some(name) = topic["name"].as_str() {
            let partitions = topic["partitions"].as_i64().unwrap_or(1) as i32;
            let _ = runtime.create_topic(name, partitions).await;
        }
    }
    for record in spec["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(spec["outputs"].as_array().into_iter().flatten())
    {
        if let Some(name) = record["topic"].as_str() {
            let _ = runtime.create_topic(name, 1).await;
        }
    }
}

/// Registers the schemas `topics` gives (AVRO, JSON Schema and Protobuf ones, with the ids
/// and references they name), as the test driver does before running the statements.
pub(crate) fn register_schemas(case: &Case, registry: &SchemaRegistry) {
    // The schemas take their ids before the ones they reference, as in ksqlDB's driver.
    let mut referenced = Vec::new();
    for topic in case.spec["topics"].as_array().into_iter().flatten() {
        let Some(name) = topic["name"].as_str() else {
            continue;
        };
        // Keys first: schemas without an id take the next one, as ksqlDB's driver gives them.
        for part in ["key", "value"] {
            let schema = &topic[format!("{part}Schema")];
            let Some(kind) = schema_kind(&topic[format!("{part}Format")], schema) else {
                continue;
            };
            let mut registered = Schema::new(kind, &text_of(schema));
            let references: Vec<(&str, Schema)> = topic[format!("{part}SchemaReferences")]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    let ref_kind = schema_kind(&r["format"], &r["schema"]).unwrap_or(kind);
                    Some((
                        r["name"].as_str()?,
                        Schema::new(ref_kind, &text_of(&r["schema"])),
                    ))
                })
                .collect();
            registered.references = (references.iter())
                .map(|(name, _)| Reference {
                    name: name.to_string(),
                    subject: name.to_string(),
                    version: 1,
                })
                .collect();
            let subject = format!("{name}-{part}");
            // A schema the registry refuses is left out, as the case's statements then fail
            // as they would against ksqlDB's.
            let _ = match topic[format!("{part}SchemaId")].as_u64() {
                Some(id) => registry.import(&subject, &registered, id as u32),
                None => registry.register_schema(&subject, &registered),
            };
            referenced.extend(references);
        }
    }
    for (name, schema) in &referenced {
        let _ = registry.register_schema(name, schema);
    }
}

/// The kind of a test topic's schema: its format's, or (without one) what its shape says.
fn schema_kind(format: &Value, schema: &Value) -> Option<SchemaKind> {
    if !(schema.is_object() || schema.is_array() || schema.is_string()) {
        return None;
    }
    match format.as_str().map(str::to_ascii_uppercase).as_deref() {
        Some("AVRO") => Some(SchemaKind::Avro),
        Some("JSON" | "JSON_SR") => Some(SchemaKind::Json),
        Some("PROTOBUF") => Some(SchemaKind::Protobuf),
        Some(_) => None,
        None => match schema {
            Value::String(text) if text.contains("syntax") || text.contains("message ") => {
                Some(SchemaKind::Protobuf)
            }
            Value::Object(o) if o.contains_key("properties") || o.contains_key("$schema") => {
                Some(SchemaKind::Json)
            }
            _ => Some(SchemaKind::Avro),
        },
    }
}

fn text_of(schema: &Value) -> String {
    match schema {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Executes the statements in order; the first error ends the case.
pub(crate) async fn execute(case: &Case, engine: &mut Engine<MemoryKafka>) -> Result<(), String> {
    // ksqlDB's harness adds its test functions (WHENCONDITION, ...).
    crate::functions::test_udfs::enable();
    let mut variables = crate::sql::variables::Variables::new();
    // As ksqlDB's test runner: the statements are one script (positions in errors count
    // lines across it), parsed before any runs.
    let script = case.statements.join("\n");
    let statements =
        crate::sql::parse_script(&script, &mut variables).map_err(|e| e.to_string())?;
    for (name, value) in case.spec["properties"].as_object().into_iter().flatten() {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        engine.set_property(name, Some(&value));
    }
    for (_, statement) in statements {
        // Variables were substituted while parsing; SET and UNSET the engine runs itself.
        if !matches!(statement, Statement::Define { .. } | Statement::Undefine(_)) {
            engine
                .execute(&statement)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Produces the inputs and runs the queries until idle.
pub(crate) fn feed(
    case: &Case,
    engine: &mut Engine<MemoryKafka>,
    restarts: bool,
) -> Result<(), String> {
    for input in case.spec["inputs"].as_array().into_iter().flatten() {
        let record = input_record(input, engine)?;
        // As Kafka Streams' test driver does: each record is processed to the end (through
        // every query it reaches) before the next is piped in.
        let runtime = engine.runtime_mut();
        runtime.produce(record).map_err(|e| e.to_string())?;
        runtime.run_until_idle().map_err(|e| e.to_string())?;
        if restarts {
            runtime.restart_checkpointed().map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// An input record of a case, encoded with the formats of the source that reads its topic
/// (a windowed key gets its window's bytes).
pub(crate) fn input_record(input: &Value, engine: &Engine<MemoryKafka>) -> Result<Record, String> {
    let topic = input["topic"].as_str().unwrap_or_default().to_string();
    let source = source_for(engine, &topic);
    let mut key = encode_key(source.as_deref(), &input["key"], engine.registry())?;
    if let (Some(window), Some(k)) = (input.get("window").filter(|w| w.is_object()), &mut key) {
        let (start, end) = (window["start"].as_i64(), window["end"].as_i64());
        if window["type"] == "session" {
            k.extend_from_slice(&end.unwrap_or(0).to_be_bytes());
        }
        k.extend_from_slice(&start.unwrap_or(0).to_be_bytes());
    }
    Ok(Record {
        // The partition its key chooses, as a Java producer's (a keyless record: 0).
        partition: None,
        key,
        value: encode_value(source.as_deref(), &input["value"], engine.registry())?,
        timestamp: input["timestamp"].as_i64().unwrap_or(0),
        topic,
        offset: 0,
        headers: input_headers(&input["headers"])?,
    })
}

/// A case's record headers: `[{"KEY": k, "VALUE": base64 or null}, ...]`.
fn input_headers(headers: &Value) -> Result<Vec<crate::record::Header>, String> {
    headers
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let key = h["KEY"].as_str().unwrap_or_default().to_string();
            let value = match h["VALUE"].as_str() {
                Some(text) => Some(
                    crate::format::avro::unbase64(text)
                        .ok_or_else(|| format!("header {key}: not base64: {text}"))?,
                ),
                None => None,
            };
            Ok((key, value))
        })
        .collect()
}

/// The catalog source stored in `topic` (a sink if one writes it, else a reader).
pub(crate) fn source_for(
    engine: &Engine<MemoryKafka>,
    topic: &str,
) -> Option<std::sync::Arc<Source>> {
    let readers_and_writers: Vec<_> = engine
        .catalog()
        .sources()
        .filter(|s| s.topic == topic)
        .collect();
    readers_and_writers
        .iter()
        .find(|s| s.written_by.is_some())
        .or(readers_and_writers.first())
        .map(|s| std::sync::Arc::clone(s))
}

/// How a producer writes the key or value (`part`) of `source` in a schema format: with the
/// schema the source names (`*_SCHEMA_ID`, `*_SCHEMA_FULL_NAME`) or the latest of the topic's
/// subject, or for PROTOBUF_NOSR the columns' own schema.
fn writer(
    source: &Source,
    part: ColumnKind,
    registry: &SchemaRegistry,
) -> Result<framed::Writer, String> {
    let (format, suffix) = match part {
        ColumnKind::Key => (source.key_format, "key"),
        ColumnKind::Value => (source.value_format, "value"),
        ColumnKind::Header(_) => return Err("headers have no writer".into()),
    };
    if format == Format::ProtobufNoSr {
        let nullable = source.schemas.nullable(part == ColumnKind::Key);
        return framed::Writer::protobuf_nosr(&source.schema.typed(part), nullable);
    }
    let subject = format!("{}-{suffix}", source.topic);
    let chosen = source.schemas.part(part == ColumnKind::Key);
    framed::registered_writer(format, &subject, chosen, registry)
}

fn encode_key(
    source: Option<&Source>,
    key: &Value,
    registry: &SchemaRegistry,
) -> Result<Option<Vec<u8>>, String> {
    if key.is_null() {
        return Ok(None);
    }
    let Some(source) = source else {
        return Ok(Some(match key {
            Value::String(s) => s.as_bytes().to_vec(),
            other => other.to_string().into_bytes(),
        }));
    };
    let types: Vec<_> = source.schema.keys().map(|c| c.data_type.clone()).collect();
    match (source.key_format, types.as_slice()) {
        (Format::None, _) | (_, []) => Ok(None),
        (Format::Kafka, [t]) => Ok(kafka::from_scalar(&json::to_scalar(key, t)?)),
        (format, _) if format.is_framed() => Ok(Some(framed::write(
            &writer(source, ColumnKind::Key, registry)?,
            key,
        )?)),
        // A DELIMITED key is written as its text.
        (Format::Delimited { .. }, _) => Ok(Some(match key {
            Value::String(s) => s.as_bytes().to_vec(),
            other => other.to_string().into_bytes(),
        })),
        _ => Ok(Some(key.to_string().into_bytes())),
    }
}

fn encode_value(
    source: Option<&Source>,
    value: &Value,
    registry: &SchemaRegistry,
) -> Result<Option<Vec<u8>>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let format = source.map_or(Format::Json, |s| s.value_format);
    let columns: Vec<_> = source
        .map(|s| s.schema.values().map(|c| c.data_type.clone()).collect())
        .unwrap_or_default();
    match (format, value, columns.as_slice()) {
        (Format::Kafka, v, [t]) => Ok(kafka::from_scalar(&json::to_scalar(v, t)?)),
        (format, v, _) if format.is_framed() => match source {
            Some(s) => Ok(Some(framed::write(
                &writer(s, ColumnKind::Value, registry)?,
                v,
            )?)),
            None => Err("no source for a schema-format topic".into()),
        },
        (_, Value::String(s), _) if format != Format::Json => Ok(Some(s.as_bytes().to_vec())),
        (_, v, _) => Ok(Some(v.to_string().into_bytes())),
    }
}

/// What an output record says, decoded for comparison.
#[derive(Debug)]
pub(crate) struct Decoded {
    key: Value,
    pub(crate) value: Value,
    timestamp: i64,
    window: Option<(i64, i64)>,
}

pub(crate) fn decode(
    source: Option<&Source>,
    record: &Record,
    registry: &SchemaRegistry,
) -> Result<Decoded, String> {
    let mut key_bytes = record.key.clone();
    let window = match (source.and_then(|s| s.window), key_bytes.as_mut()) {
        (Some(WindowInfo::Time { size_ms }), Some(k)) if k.len() >= 8 => {
            let start = i64::from_be_bytes(k.split_off(k.len() - 8).try_into().unwrap_or([0; 8]));
            Some((start, start + size_ms))
        }
        (Some(WindowInfo::Session), Some(k)) if k.len() >= 16 => {
            let tail = k.split_off(k.len() - 16);
            let end = i64::from_be_bytes(tail[..8].try_into().unwrap_or([0; 8]));
            let start = i64::from_be_bytes(tail[8..].try_into().unwrap_or([0; 8]));
            Some((start, end))
        }
        _ => None,
    };
    let key = match (source, key_bytes) {
        (_, None) => Value::Null,
        (Some(s), Some(bytes)) if s.key_format.is_framed() => {
            let nosr = writer(s, ColumnKind::Key, registry).ok();
            framed::read(s.key_format, &bytes, registry, nosr.as_ref())?
        }
        (Some(s), Some(bytes)) if s.key_format == Format::Kafka => match s.schema.keys().next() {
            Some(c) => json::from_scalar(&kafka::to_scalar(&bytes, &c.data_type)?),
            None => Value::Null,
        },
        (Some(s), Some(bytes)) if matches!(s.key_format, Format::Delimited { .. }) => {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        (_, Some(bytes)) => serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    };
    let value = match (source, &record.value) {
        (_, None) => Value::Null,
        (Some(s), Some(bytes)) if s.value_format.is_framed() => {
            let nosr = writer(s, ColumnKind::Value, registry).ok();
            framed::read(s.value_format, bytes, registry, nosr.as_ref())?
        }
        (Some(s), Some(bytes)) if s.value_format == Format::Kafka => match s.schema.values().next()
        {
            Some(c) => json::from_scalar(&kafka::to_scalar(bytes, &c.data_type)?),
            None => Value::Null,
        },
        (Some(s), Some(bytes)) if s.value_format != Format::Json => {
            Value::String(String::from_utf8_lossy(bytes).into_owned())
        }
        (_, Some(bytes)) => {
            serde_json::from_slice(bytes).map_err(|e| format!("output value is not JSON: {e}"))?
        }
    };
    Ok(Decoded {
        key,
        value,
        timestamp: record.timestamp,
        window,
    })
}

/// Every topic named in `outputs` holds exactly the expected records, in order.
pub(crate) fn verify_outputs(case: &Case, engine: &Engine<MemoryKafka>) -> Result<(), String> {
    let expected = case.spec["outputs"].as_array().cloned().unwrap_or_default();
    let mut topics: Vec<&str> = expected
        .iter()
        .filter_map(|o| o["topic"].as_str())
        .collect();
    topics.dedup();
    for topic in topics {
        let want: Vec<&Value> = expected.iter().filter(|o| o["topic"] == topic).collect();
        let source = source_for(engine, topic);
        let got = engine
            .runtime()
            .records(topic)
            .iter()
            .map(|r| decode(source.as_deref(), r, engine.registry()))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            compare_record(w, g).map_err(|e| format!("{topic} record {i}: {e}"))?;
        }
        if want.len() != got.len() {
            let shown: Vec<String> = got
                .iter()
                .map(|g| format!("{}:{}", g.key, g.value))
                .collect();
            return Err(format!(
                "{topic}: expected {} records, got {}: [{}]",
                want.len(),
                got.len(),
                shown.join(", ")
            ));
        }
    }
    Ok(())
}

fn compare_record(want: &Value, got: &Decoded) -> Result<(), String> {
    if !json_matches(&want["key"], &got.key) {
        return Err(format!("key: expected {}, got {}", want["key"], got.key));
    }
    if !json_matches(&want["value"], &got.value) {
        return Err(format!(
            "value: expected {}, got {} (key {})",
            want["value"], got.value, got.key
        ));
    }
    if let Some(ts) = want["timestamp"].as_i64()
        && ts != got.timestamp
    {
        return Err(format!("timestamp: expected {ts}, got {}", got.timestamp));
    }
    if let Some(window) = want.get("window").filter(|w| !w.is_null()) {
        let expected = (window["start"].as_i64(), window["end"].as_i64());
        if got.window.map(|(s, e)| (Some(s), Some(e))) != Some(expected) {
            return Err(format!("window: expected {window}, got {:?}", got.window));
        }
    }
    Ok(())
}

/// ksqlDB's comparison: same fields (names matched as its deserializers do), numbers within
/// 1e-6, a string may stand for a number.
pub fn json_matches(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => (a.as_f64().unwrap_or(f64::NAN) - b.as_f64().unwrap_or(f64::NAN)).abs() < 1e-6,
        },
        (Value::String(a), Value::Number(b)) => a
            .parse::<f64>()
            .is_ok_and(|x| (x - b.as_f64().unwrap_or(f64::NAN)).abs() < 1e-6),
        // ksqlDB's test driver reads expected values through the sink's deserializer, which
        // matches field names case-insensitively when the exact name is missing, and reads a
        // field that is absent as NULL.
        (Value::Object(a), Value::Object(b)) => {
            let null = Value::Null;
            a.iter()
                .all(|(k, v)| json_matches(v, json::field(b, k).unwrap_or(&null)))
                && b.iter()
                    .all(|(k, g)| json::field(a, k).is_some() || g.is_null())
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_matches(x, y))
        }
        _ => want == got,
    }
}

/// `post.sources`: each named source exists with the given type and schema.
fn verify_post(case: &Case, engine: &Engine<MemoryKafka>) -> Result<(), String> {
    for expected in case.spec["post"]["sources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = expected["name"].as_str().unwrap_or_default();
        let source = engine
            .catalog()
            .get(name)
            .ok_or_else(|| format!("post: source {name} missing"))?;
        if let Some(kind) = expected["type"].as_str()
            && !source.kind.to_string().eq_ignore_ascii_case(kind)
        {
            return Err(format!(
                "post: {name} is a {}, expected a {kind}",
                source.kind
            ));
        }
        if let Some(schema) = expected["schema"].as_str() {
            let (want, got) = (
                normalize_schema(schema),
                normalize_schema(&source.schema.to_sql()),
            );
            if want != got {
                return Err(format!("post: {name} schema: expected {want}, got {got}"));
            }
        }
    }
    Ok(())
}

/// A schema string in one spelling: upper case, no quotes or spaces, `VARCHAR` as `STRING`
/// and `INT` as `INTEGER`.
fn normalize_schema(schema: &str) -> String {
    // Tables' keys print as `PRIMARY KEY` in some of ksqlDB's outputs and `KEY` in others.
    let upper = schema
        .replace('`', "")
        .to_ascii_uppercase()
        .replace("PRIMARY KEY", "KEY");
    let mut out = String::new();
    let mut word = String::new();
    for c in upper.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        out.push_str(match word.as_str() {
            "VARCHAR" => "STRING",
            "INT" => "INTEGER",
            w => w,
        });
        word.clear();
        if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Cases as expected.
    pub passed: usize,
    /// Cases not as expected.
    pub failed: usize,
    /// Cases not run.
    pub skipped: usize,
}

/// Runs every case, returning each outcome.
pub async fn run_all(cases: &[Case]) -> Vec<(&Case, Outcome)> {
    run_all_with(cases, false).await
}

/// Runs every case (see [`run_with`] for `restarts`), returning each outcome.
pub async fn run_all_with(cases: &[Case], restarts: bool) -> Vec<(&Case, Outcome)> {
    let mut out = Vec::with_capacity(cases.len());
    for case in cases {
        out.push((case, run_with(case, restarts).await));
    }
    out
}

/// A markdown table of the results per file, under `title` and `intro`, with the totals.
pub fn compatibility_table(
    title: &str,
    intro: &str,
    results: &[(&Case, Outcome)],
) -> (String, Totals) {
    let mut per_file: std::collections::BTreeMap<&str, (usize, usize, usize)> =
        std::collections::BTreeMap::new();
    for (case, outcome) in results {
        let entry = per_file.entry(case.file.as_str()).or_default();
        entry.0 += 1;
        match outcome {
            Outcome::Passed => entry.1 += 1,
            Outcome::Skipped(_) => entry.2 += 1,
            Outcome::Failed(_) => {}
        }
    }
    let t = totals(results.iter().map(|(_, o)| o));
    let all = results.len().max(1);
    let mut table = format!(
        "# {title}\n\n{intro}\n\n**{} of {} cases pass ({:.1}%)**; {} fail, {} skipped.\n\n\
         | file | cases | passed | skipped | passed % |\n|---|---:|---:|---:|---:|\n",
        t.passed,
        results.len(),
        100.0 * t.passed as f64 / all as f64,
        t.failed,
        t.skipped
    );
    for (file, (n, passed, skipped)) in per_file {
        table.push_str(&format!(
            "| {file} | {n} | {passed} | {skipped} | {:.0}% |\n",
            100.0 * passed as f64 / n as f64
        ));
    }
    (table, t)
}

/// Adds up outcomes.
pub fn totals<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Totals {
    let mut t = Totals::default();
    for o in outcomes {
        match o {
            Outcome::Passed => t.passed += 1,
            Outcome::Failed(_) => t.failed += 1,
            Outcome::Skipped(_) => t.skipped += 1,
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_like_ksqldb() {
        assert!(json_matches(&json!({"A": 1.0000001}), &json!({"A": 1.0})));
        assert!(!json_matches(&json!({"A": 1}), &json!({"A": 2})));
        assert!(json_matches(&json!("1.50"), &json!(1.5)));
        assert!(!json_matches(&json!({"A": 1}), &json!({"A": 1, "B": 2})));
        assert!(json_matches(&json!({"json_v": 1}), &json!({"JSON_V": 1})));
    }

    #[test]
    fn schemas_compare_loosely() {
        assert_eq!(
            normalize_schema("ID BIGINT KEY, NAME varchar"),
            normalize_schema("`ID` BIGINT KEY, `NAME` STRING")
        );
    }
}

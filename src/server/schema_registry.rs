//! The embedded Schema Registry's REST API: Confluent's (subjects, versions, schemas by id,
//! schema types, compatibility levels and checks, deletes), so other applications' Avro,
//! Protobuf and JSON Schema serializers point at `eddy server` as they would at Confluent's
//! registry. Served on `schema.registry.listeners` (default `http://0.0.0.0:8081`) over
//! [`SchemaLog`], the registry's Kafka topic: every server of a cluster serves the same ids.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as Json, json};

use crate::format::registry::{Change, Compatibility, RegistryError, Schema, SchemaKind, Store};
use crate::kafka::schemas::SchemaLog;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Log = State<Arc<SchemaLog>>;
type Params = Query<HashMap<String, String>>;
type Answer = Result<Json, RegistryError>;

/// The routes.
pub fn router(log: Arc<SchemaLog>) -> Router {
    Router::new()
        .route("/", get(|| async { respond(Ok(json!({}))) }))
        .route(
            "/schemas/types",
            get(|| async { respond(Ok(json!(["JSON", "PROTOBUF", "AVRO"]))) }),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(|| async { respond(Ok(json!([]))) }),
        )
        .route("/config", get(default_config).put(set_default_config))
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatible_with_version),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatible_with_all),
        )
        .route(
            "/mode",
            get(|| async { respond(Ok(json!({"mode": "READWRITE"}))) }),
        )
        .route(
            "/mode/{subject}",
            get(|| async { respond(Ok(json!({"mode": "READWRITE"}))) }),
        )
        .with_state(log)
}

fn respond(answer: Answer) -> Response {
    let (status, body) = match answer {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => (
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            json!({"error_code": e.code(), "message": e.to_string()}),
        ),
    };
    (status, [("content-type", CONTENT_TYPE)], body.to_string()).into_response()
}

/// Runs `f` (which may wait on Kafka) off the async threads.
async fn blocking(
    log: Arc<SchemaLog>,
    f: impl FnOnce(&SchemaLog) -> Answer + Send + 'static,
) -> Response {
    respond(
        tokio::task::spawn_blocking(move || f(&log))
            .await
            .unwrap_or_else(|e| Err(RegistryError::Unavailable(e.to_string()))),
    )
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn schema_json(schema: &Schema) -> Json {
    let mut body = json!({"schema": schema.text});
    if schema.kind != SchemaKind::Avro {
        body["schemaType"] = json!(schema.kind.name());
    }
    if !schema.references.is_empty() {
        body["references"] = json!(schema.references);
    }
    body
}

/// A schema in the form a request asks for: `format=serialized` gives a Protobuf schema as
/// a base64 `FileDescriptorProto` (what Confluent's Python and Go deserializers read).
fn presented(
    mut schema: Schema,
    params: &HashMap<String, String>,
) -> Result<Schema, RegistryError> {
    if schema.kind == SchemaKind::Protobuf
        && params.get("format").is_some_and(|f| f == "serialized")
    {
        schema.text = crate::format::protobuf::serialized(&schema.text)
            .map_err(RegistryError::InvalidSchema)?;
    }
    Ok(schema)
}

fn parse_id(id: &str) -> Result<u32, RegistryError> {
    id.parse()
        .map_err(|_| RegistryError::SchemaNotFound(id.to_string()))
}

fn schema_of(store: &Store, id: &str) -> Result<Schema, RegistryError> {
    let id = parse_id(id)?;
    store
        .schema(id)
        .cloned()
        .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))
}

async fn schema_by_id(State(log): Log, Path(id): Path<String>, Query(params): Params) -> Response {
    blocking(log, move |log| {
        log.sync()?;
        let schema = log.read(|store| schema_of(store, &id))?;
        Ok(schema_json(&presented(schema, &params)?))
    })
    .await
}

async fn raw_schema_by_id(State(log): Log, Path(id): Path<String>) -> Response {
    blocking(log, move |log| {
        log.sync()?;
        log.read(|store| raw(&schema_of(store, &id)?))
    })
    .await
}

/// A schema's text as the registry serves it alone: the document itself for Avro and JSON.
fn raw(schema: &Schema) -> Answer {
    Ok(match schema.kind {
        SchemaKind::Protobuf => Json::String(schema.text.clone()),
        _ => {
            serde_json::from_str(&schema.text).unwrap_or_else(|_| Json::String(schema.text.clone()))
        }
    })
}

async fn subjects_of_id(State(log): Log, Path(id): Path<String>) -> Response {
    blocking(log, move |log| {
        log.read(|store| {
            schema_of(store, &id)?;
            let mut subjects: Vec<String> = store
                .usages(parse_id(&id)?)
                .into_iter()
                .map(|(s, _)| s)
                .collect();
            subjects.dedup();
            Ok(json!(subjects))
        })
    })
    .await
}

async fn versions_of_id(State(log): Log, Path(id): Path<String>) -> Response {
    blocking(log, move |log| {
        log.read(|store| {
            schema_of(store, &id)?;
            let usages = store.usages(parse_id(&id)?);
            Ok(json!(
                usages
                    .iter()
                    .map(|(s, v)| json!({"subject": s, "version": v}))
                    .collect::<Vec<_>>()
            ))
        })
    })
    .await
}

async fn subjects(State(log): Log, Query(params): Params) -> Response {
    blocking(log, move |log| {
        log.sync()?;
        Ok(json!(
            log.read(|store| store.subjects(flag(&params, "deleted")))
        ))
    })
    .await
}

async fn versions(State(log): Log, Path(subject): Path<String>, Query(params): Params) -> Response {
    blocking(log, move |log| {
        log.sync()?;
        log.read(|store| {
            let versions = store
                .versions(&subject, flag(&params, "deleted"))
                .ok_or_else(|| RegistryError::SubjectNotFound(subject.clone()))?;
            Ok(json!(versions.iter().map(|(n, _)| n).collect::<Vec<_>>()))
        })
    })
    .await
}

/// A request's schema: `{"schema": ..., "schemaType": ..., "references": [...]}`.
fn request_schema(body: &[u8]) -> Result<Schema, RegistryError> {
    let schema: Schema = serde_json::from_slice(body)
        .map_err(|e| RegistryError::InvalidSchema(format!("the request is not a schema: {e}")))?;
    schema.validate()?;
    Ok(schema)
}

async fn register(
    State(log): Log,
    Path(subject): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    blocking(log, move |log| {
        let schema = request_schema(&body)?;
        let (_, id) = log.register(&subject, &schema)?;
        Ok(json!({"id": id}))
    })
    .await
}

async fn lookup(State(log): Log, Path(subject): Path<String>, body: axum::body::Bytes) -> Response {
    blocking(log, move |log| {
        let schema = request_schema(&body)?;
        log.sync()?;
        log.read(|store| {
            store
                .versions(&subject, false)
                .ok_or_else(|| RegistryError::SubjectNotFound(subject.clone()))?;
            let (version, id) = store
                .lookup(&subject, &schema)
                .ok_or_else(|| RegistryError::SchemaNotFound(String::new()))?;
            Ok(versioned(&subject, version, id, &schema))
        })
    })
    .await
}

fn versioned(subject: &str, version: u32, id: u32, schema: &Schema) -> Json {
    let mut body = schema_json(schema);
    body["subject"] = json!(subject);
    body["version"] = json!(version);
    body["id"] = json!(id);
    body
}

/// The live version `version` (a number, `latest` or -1) of `subject`: number and id.
fn find_version(
    store: &Store,
    subject: &str,
    version: &str,
    deleted: bool,
) -> Result<(u32, u32), RegistryError> {
    let versions = store
        .versions(subject, deleted)
        .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
    let found = match version {
        "latest" | "-1" => versions.last(),
        n => {
            let n: u32 = n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| RegistryError::InvalidVersion(n.to_string()))?;
            versions.iter().find(|(v, _)| *v == n)
        }
    };
    found
        .map(|(n, v)| (*n, v.id))
        .ok_or_else(|| RegistryError::VersionNotFound(version.to_string()))
}

async fn version(
    State(log): Log,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    blocking(log, move |log| {
        log.sync()?;
        log.read(|store| {
            let (n, id) = find_version(store, &subject, &version, flag(&params, "deleted"))?;
            Ok(versioned(
                &subject,
                n,
                id,
                &schema_of(store, &id.to_string())?,
            ))
        })
    })
    .await
}

async fn raw_version(
    State(log): Log,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    blocking(log, move |log| {
        log.sync()?;
        log.read(|store| {
            let (_, id) = find_version(store, &subject, &version, false)?;
            raw(&schema_of(store, &id.to_string())?)
        })
    })
    .await
}

async fn delete_subject(
    State(log): Log,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Response {
    blocking(log, move |log| {
        log.sync()?;
        let permanent = flag(&params, "permanent");
        let versions = log.read(|store| {
            let all = store
                .versions(&subject, true)
                .ok_or_else(|| RegistryError::SubjectNotFound(subject.clone()))?;
            let live = all.iter().filter(|(_, v)| !v.deleted).count();
            match (permanent, live) {
                (false, 0) => Err(RegistryError::SubjectSoftDeleted(subject.clone())),
                (true, n) if n > 0 => Err(RegistryError::SubjectNotSoftDeleted(subject.clone())),
                _ => Ok(all
                    .iter()
                    .filter(|(_, v)| permanent || !v.deleted)
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()),
            }
        })?;
        log.write(&Change::DeleteSubject { subject, permanent })?;
        Ok(json!(versions))
    })
    .await
}

async fn delete_version(
    State(log): Log,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    blocking(log, move |log| {
        log.sync()?;
        let permanent = flag(&params, "permanent");
        let (n, _) = log.read(|store| {
            let found = find_version(store, &subject, &version, permanent)?;
            let live = store.live(&subject).any(|(v, _)| v == found.0);
            if permanent && live {
                return Err(RegistryError::VersionNotSoftDeleted(
                    subject.clone(),
                    found.0,
                ));
            }
            Ok(found)
        })?;
        log.write(&Change::DeleteVersion {
            subject,
            version: n,
            permanent,
        })?;
        Ok(json!(n))
    })
    .await
}

fn requested_level(body: &[u8]) -> Result<Compatibility, RegistryError> {
    let body: Json = serde_json::from_slice(body)
        .map_err(|e| RegistryError::InvalidCompatibility(e.to_string()))?;
    let name = body["compatibility"]
        .as_str()
        .or(body["compatibilityLevel"].as_str())
        .ok_or_else(|| RegistryError::InvalidCompatibility(body.to_string()))?;
    Compatibility::from_name(name)
}

async fn default_config(State(log): Log) -> Response {
    blocking(log, |log| {
        Ok(json!({"compatibilityLevel": log.read(|s| s.default_compatibility()).name()}))
    })
    .await
}

async fn set_default_config(State(log): Log, body: axum::body::Bytes) -> Response {
    set_level(log, None, body).await
}

/// Sets the compatibility level of `subject` (none: the default) to the body's.
async fn set_level(
    log: Arc<SchemaLog>,
    subject: Option<String>,
    body: axum::body::Bytes,
) -> Response {
    blocking(log, move |log| {
        let level = requested_level(&body)?;
        log.write(&Change::Config {
            subject,
            level: Some(level),
        })?;
        Ok(json!({"compatibility": level.name()}))
    })
    .await
}

async fn subject_config(
    State(log): Log,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Response {
    blocking(log, move |log| {
        log.read(|store| {
            let level = match store.subject_compatibility(&subject) {
                Some(level) => level,
                None if flag(&params, "defaultToGlobal") => store.default_compatibility(),
                None => return Err(RegistryError::NoSubjectCompatibility(subject.clone())),
            };
            Ok(json!({"compatibilityLevel": level.name()}))
        })
    })
    .await
}

async fn set_subject_config(
    State(log): Log,
    Path(subject): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    set_level(log, Some(subject), body).await
}

async fn delete_subject_config(State(log): Log, Path(subject): Path<String>) -> Response {
    blocking(log, move |log| {
        let level = log
            .read(|s| s.subject_compatibility(&subject))
            .ok_or_else(|| RegistryError::NoSubjectCompatibility(subject.clone()))?;
        log.write(&Change::Config {
            subject: Some(subject),
            level: None,
        })?;
        Ok(json!({"compatibilityLevel": level.name()}))
    })
    .await
}

/// `{"is_compatible": ...}` for `schema` against `against` (ids), under the subject's level.
fn compatibility(store: &Store, subject: &str, schema: &Schema, against: &[u32]) -> Answer {
    let earlier: Vec<&Schema> = against.iter().filter_map(|id| store.schema(*id)).collect();
    Ok(match store.check(subject, schema, &earlier) {
        Ok(()) => json!({"is_compatible": true}),
        Err(e) => json!({"is_compatible": false, "messages": [e.to_string()]}),
    })
}

async fn compatible_with_version(
    State(log): Log,
    Path((subject, version)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    compatible(log, subject, Some(version), body).await
}

async fn compatible_with_all(
    State(log): Log,
    Path(subject): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    compatible(log, subject, None, body).await
}

/// Whether the body's schema may follow `version` of `subject` (none: the versions its
/// level checks).
async fn compatible(
    log: Arc<SchemaLog>,
    subject: String,
    version: Option<String>,
    body: axum::body::Bytes,
) -> Response {
    blocking(log, move |log| {
        let schema = request_schema(&body)?;
        log.sync()?;
        log.read(|store| {
            let ids: Vec<u32> = match &version {
                Some(version) => vec![find_version(store, &subject, version, false)?.1],
                None => store.live(&subject).map(|(_, id)| id).collect(),
            };
            compatibility(store, &subject, &schema, &ids)
        })
    })
    .await
}

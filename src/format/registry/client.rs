//! [`Client`]: an external Schema Registry through Confluent's REST API
//! (`ksql.schema.registry.url`).
//!
//! Several URLs may be given (comma-separated): a request that cannot reach one tries the
//! next. `ksql.schema.registry.basic.auth.user.info` (`user:password`) authenticates every
//! request; `https` URLs use TLS, with the system's roots or the PEM file
//! `ksql.schema.registry.ssl.ca.location`. Decoders call the registry from synchronous
//! code (a cache miss on a record's schema id), so requests run on a small runtime of
//! their own and the caller waits for the answer.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::{Backend, RegistryError, Schema, SchemaKind};

/// Where and how to reach an external registry.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// Its base URLs.
    pub urls: Vec<String>,
    /// `user:password` for basic authentication.
    pub user_info: Option<String>,
    /// A PEM file of the certificate authorities to trust.
    pub ca_location: Option<String>,
}

impl ClientConfig {
    /// The configuration ksqlDB's properties give (`ksql.schema.registry.url`, ...), if
    /// they name a registry.
    pub fn from_properties<'a>(
        properties: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Option<Self> {
        let mut config = Self::default();
        for (name, value) in properties {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("ksql.").unwrap_or(&name) {
                "schema.registry.url" => {
                    config.urls = value
                        .split(',')
                        .map(|u| u.trim().trim_end_matches('/').to_string())
                        .filter(|u| !u.is_empty())
                        .collect();
                }
                "schema.registry.basic.auth.user.info" => config.user_info = Some(value.clone()),
                "schema.registry.ssl.ca.location" => config.ca_location = Some(value.clone()),
                _ => {}
            }
        }
        (!config.urls.is_empty()).then_some(config)
    }
}

/// An external registry.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    http: reqwest::Client,
}

/// Runs `future` on the registry clients' runtime and waits for it.
fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("schema-registry")
            .enable_all()
            .build()
            .ok()
    });
    let (tx, rx) = std::sync::mpsc::channel();
    match runtime {
        Some(runtime) => {
            runtime.spawn(async move {
                let _ = tx.send(future.await);
            });
        }
        None => unreachable_runtime(),
    }
    rx.recv().unwrap_or_else(|_| unreachable_runtime())
}

#[cold]
fn unreachable_runtime() -> ! {
    panic!("the schema registry client's runtime could not start")
}

impl Client {
    /// A client; checks nothing until the first request.
    pub fn new(config: ClientConfig) -> Result<Self, RegistryError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        if let Some(path) = &config.ca_location {
            let pem = std::fs::read(path)
                .map_err(|e| RegistryError::Unavailable(format!("reading {path}: {e}")))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| RegistryError::Unavailable(format!("{path}: {e}")))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
        Ok(Self { config, http })
    }

    /// Sends a request (`GET` without a body, `POST` with one) to the first URL that
    /// answers; `Ok(None)` for a 404.
    pub fn call(&self, path: &str, body: Option<Json>) -> Result<Option<Json>, RegistryError> {
        let requests: Vec<reqwest::RequestBuilder> = (self.config.urls.iter())
            .map(|url| {
                let url = format!("{url}/{}", path.trim_start_matches('/'));
                let mut request = match &body {
                    Some(body) => self.http.post(url).json(body),
                    None => self.http.get(url),
                }
                .header("Accept", "application/vnd.schemaregistry.v1+json");
                if let Some(info) = &self.config.user_info {
                    let (user, password) = info.split_once(':').unwrap_or((info, ""));
                    request = request.basic_auth(user, Some(password));
                }
                request
            })
            .collect();
        block_on(async move {
            let mut last = RegistryError::Unavailable("no schema registry URL".into());
            for request in requests {
                match request.send().await {
                    Ok(response) => return answer(response).await,
                    Err(e) => last = RegistryError::Unavailable(e.to_string()),
                }
            }
            Err(last)
        })
    }
}

/// A response's JSON, or the registry's error.
async fn answer(response: reqwest::Response) -> Result<Option<Json>, RegistryError> {
    let status = response.status();
    let body: Json = response.json().await.unwrap_or(Json::Null);
    if status.is_success() {
        return Ok(Some(body));
    }
    let code = body["error_code"]
        .as_u64()
        .map_or(u32::from(status.as_u16()), |c| c as u32);
    if matches!(code, 40401..=40403) {
        return Ok(None);
    }
    Err(RegistryError::Remote {
        code,
        message: body["message"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_string),
    })
}

fn schema_of(body: &Json) -> Result<Schema, RegistryError> {
    serde_json::from_value(body.clone())
        .map_err(|e| RegistryError::Unavailable(format!("unexpected answer {body}: {e}")))
}

fn encode_path(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl Backend for Client {
    fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let mut body = json!({"schema": schema.text});
        if schema.kind != SchemaKind::Avro {
            body["schemaType"] = json!(schema.kind.name());
        }
        if !schema.references.is_empty() {
            body["references"] = json!(schema.references);
        }
        let path = format!("subjects/{}/versions", encode_path(subject));
        let answer = self
            .call(&path, Some(body))?
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        answer["id"]
            .as_u64()
            .map(|id| id as u32)
            .ok_or_else(|| RegistryError::Unavailable(format!("unexpected answer {answer}")))
    }

    fn schema(&self, id: u32) -> Result<Option<Schema>, RegistryError> {
        self.call(&format!("schemas/ids/{id}"), None)?
            .map(|body| schema_of(&body))
            .transpose()
    }

    fn latest(&self, subject: &str) -> Result<Option<(u32, Schema)>, RegistryError> {
        self.subject_version(subject, "latest")
    }

    fn version(&self, subject: &str, version: u32) -> Result<Option<(u32, Schema)>, RegistryError> {
        self.subject_version(subject, &version.to_string())
    }
}

impl Client {
    fn subject_version(
        &self,
        subject: &str,
        version: &str,
    ) -> Result<Option<(u32, Schema)>, RegistryError> {
        let path = format!("subjects/{}/versions/{version}", encode_path(subject));
        let Some(body) = self.call(&path, None)? else {
            return Ok(None);
        };
        let id = body["id"]
            .as_u64()
            .ok_or_else(|| RegistryError::Unavailable(format!("unexpected answer {body}")))?;
        Ok(Some((id as u32, schema_of(&body)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_name_the_registry() {
        let properties = [
            (
                "ksql.schema.registry.url".to_string(),
                "http://a:8081/, http://b:8081".to_string(),
            ),
            (
                "ksql.schema.registry.basic.auth.user.info".to_string(),
                "fred:letmein".to_string(),
            ),
        ];
        let config = ClientConfig::from_properties(properties.iter().map(|(k, v)| (k, v)))
            .expect("a registry");
        assert_eq!(config.urls, ["http://a:8081", "http://b:8081"]);
        assert_eq!(config.user_info.as_deref(), Some("fred:letmein"));
        assert!(ClientConfig::from_properties(std::iter::empty()).is_none());
        assert_eq!(encode_path("a b/c-value"), "a%20b%2Fc-value");
    }
}

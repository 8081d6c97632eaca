//! The shell's HTTP client: ksqlDB's REST API of an Eddy (or ksqlDB) server.
//!
//! `/info` for the banner, `/ksql` for statements, `/query` for push and pull queries and
//! `PRINT` (read as they stream, one element per line), `/close-query` to end a push query.
//! Session properties (`SET`) go with every request. Errors come back as [`CliError`]
//! values the shell prints; nothing here panics on a bad answer.

use futures_util::StreamExt;
use serde_json::{Map, Value, json};

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server could not be reached.
    #[error("cannot reach the server at {url}: {why}")]
    Unreachable {
        /// The server's URL.
        url: String,
        /// Why.
        why: String,
    },
    /// The server refused the request, with ksqlDB's error body.
    #[error("{message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The error message.
        message: String,
        /// The statement it concerns, when the server says.
        statement: Option<String>,
    },
    /// The answer could not be read.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

/// A connection to one server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The server's base URL, e.g. `http://localhost:8088`.
    pub url: String,
}

/// One element of a `/query` response as it streams.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryEvent {
    /// The columns (`` `A` STRING, `B` BIGINT ``) and the query id.
    Header {
        /// The query id (push queries can be closed with it).
        query_id: String,
        /// Column names and types, in order.
        columns: Vec<(String, String)>,
    },
    /// A row; `tombstone` for a table row that was deleted.
    Row {
        /// The column values.
        values: Vec<Value>,
        /// A deleted table row.
        tombstone: bool,
    },
    /// The last message (`Limit Reached`, `Query Completed`).
    Final(String),
    /// A `PRINT` line.
    Line(String),
    /// An error in the middle of the stream.
    Error(String),
}

impl Client {
    /// A client of the server at `url`.
    pub fn new(url: &str) -> Self {
        Self::with_credentials(url, None)
    }

    /// A client of the server at `url` sending `user` and password with every request
    /// (HTTP Basic authentication).
    pub fn with_credentials(url: &str, credentials: Option<(&str, &str)>) -> Self {
        use base64::Engine as _;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some((user, password)) = credentials {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            if let Ok(value) = reqwest::header::HeaderValue::from_str(&format!("Basic {token}")) {
                headers.insert(reqwest::header::AUTHORIZATION, value);
            }
        }
        Self {
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap_or_default(),
            url: url.trim_end_matches('/').to_string(),
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        CliError::Unreachable {
            url: self.url.clone(),
            why: e.to_string(),
        }
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<Value, CliError> {
        let response = self
            .http
            .get(format!("{}/info", self.url))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        response
            .json()
            .await
            .map_err(|e| CliError::Protocol(e.to_string()))
    }

    /// `POST /ksql`: the entities of the statements.
    pub async fn ksql(
        &self,
        sql: &str,
        properties: &Map<String, Value>,
    ) -> Result<Vec<Value>, CliError> {
        let response = self.send("/ksql", sql, properties).await?;
        let value: Value = response
            .json()
            .await
            .map_err(|e| CliError::Protocol(e.to_string()))?;
        Ok(value.as_array().cloned().unwrap_or_default())
    }

    /// POSTs a statement and its session properties to `path`; a refusal is an error.
    async fn send(
        &self,
        path: &str,
        sql: &str,
        properties: &Map<String, Value>,
    ) -> Result<reqwest::Response, CliError> {
        let body = json!({"ksql": sql, "streamsProperties": properties});
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(response);
        }
        let value: Value = response
            .json()
            .await
            .map_err(|e| CliError::Protocol(e.to_string()))?;
        Err(server_error(status, &value))
    }

    /// `POST /query`: the response, element by element, to `on_event` until the server
    /// ends it or `on_event` returns false (then the caller closes the query).
    pub async fn query(
        &self,
        sql: &str,
        properties: &Map<String, Value>,
        on_event: &mut (dyn FnMut(QueryEvent) -> bool + Send),
    ) -> Result<(), CliError> {
        let response = self.send("/query", sql, properties).await?;
        let mut stream = response.bytes_stream();
        let mut pending = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.unreachable(&e))?;
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                if let Some(event) = parse_line(line.trim())
                    && !on_event(event)
                {
                    return Ok(());
                }
            }
        }
        if let Some(event) = parse_line(pending.trim()) {
            on_event(event);
        }
        Ok(())
    }

    /// `POST /close-query`.
    pub async fn close(&self, query_id: &str) -> Result<(), CliError> {
        self.http
            .post(format!("{}/close-query", self.url))
            .json(&json!({ "queryId": query_id }))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        Ok(())
    }
}

fn server_error(status: u16, body: &Value) -> CliError {
    CliError::Server {
        status,
        message: body["message"]
            .as_str()
            .map_or_else(|| body.to_string(), String::from),
        statement: body["statementText"].as_str().map(String::from),
    }
}

/// One line of a `/query` response: `[{"header":..}`, `,{"row":..}`, `]`, or a PRINT line.
fn parse_line(line: &str) -> Option<QueryEvent> {
    let trimmed = line
        .trim_start_matches(['[', ','])
        .trim_end_matches([']', ',']);
    if trimmed.is_empty() {
        return None;
    }
    let Ok(value) = serde_json::from_str::<Value>(trimmed) else {
        return Some(QueryEvent::Line(line.to_string()));
    };
    if let Some(header) = value.get("header") {
        return Some(QueryEvent::Header {
            query_id: header["queryId"].as_str().unwrap_or_default().to_string(),
            columns: split_schema(header["schema"].as_str().unwrap_or_default()),
        });
    }
    if let Some(row) = value.get("row") {
        return Some(QueryEvent::Row {
            values: row["columns"].as_array().cloned().unwrap_or_default(),
            tombstone: row["tombstone"] == true,
        });
    }
    if let Some(message) = value.get("finalMessage") {
        return Some(QueryEvent::Final(
            message.as_str().unwrap_or_default().to_string(),
        ));
    }
    if let Some(error) = value.get("errorMessage") {
        return Some(QueryEvent::Error(
            error["message"].as_str().unwrap_or_default().to_string(),
        ));
    }
    Some(QueryEvent::Line(line.to_string()))
}

/// `` `A` STRING KEY, `B` STRUCT<`X` INT, `Y` INT> `` → names and types (commas inside `<>`
/// belong to the type).
pub fn split_schema(schema: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    let (mut depth, mut current) = (0, String::new());
    for c in schema.chars() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let p = p.trim();
            match p.strip_prefix('`').and_then(|rest| rest.split_once('`')) {
                Some((name, ty)) => (name.to_string(), ty.trim().to_string()),
                None => (p.to_string(), String::new()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_split_on_top_level_commas() {
        assert_eq!(
            split_schema("`ID` STRING KEY, `S` STRUCT<`A` INT, `B` INT>, `D` DECIMAL(4, 2)"),
            vec![
                ("ID".into(), "STRING KEY".into()),
                ("S".into(), "STRUCT<`A` INT, `B` INT>".into()),
                ("D".into(), "DECIMAL(4, 2)".into()),
            ]
        );
    }

    #[test]
    fn query_lines_become_events() {
        assert_eq!(
            parse_line(r#"[{"header":{"queryId":"q1","schema":"`K` STRING"}}"#),
            Some(QueryEvent::Header {
                query_id: "q1".into(),
                columns: vec![("K".into(), "STRING".into())]
            })
        );
        assert_eq!(
            parse_line(r#",{"row":{"columns":["a"],"tombstone":true}}"#),
            Some(QueryEvent::Row {
                values: vec![json!("a")],
                tombstone: true
            })
        );
        assert_eq!(
            parse_line(r#",{"finalMessage":"Limit Reached"}]"#),
            Some(QueryEvent::Final("Limit Reached".into()))
        );
        assert_eq!(parse_line("]"), None);
    }
}

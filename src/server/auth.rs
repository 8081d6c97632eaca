//! HTTP Basic authentication as ksqlDB's (`authentication.method=BASIC`).
//!
//! Users come from a file (`authentication.basic.users.file`) in the format of ksqlDB's
//! JAAS `PropertyFileLoginModule` file: one `user: password[,role...]` per line (`#`
//! comments), the password plain or `MD5:<hex digest>` as Jetty stores them. A request
//! must carry `Authorization: Basic ...` of a user with one of `authentication.roles`
//! (default: any role), unless its path is in `authentication.skip.paths` (e.g.
//! `/healthcheck`); otherwise it is answered 401 with ksqlDB's error body and a
//! `WWW-Authenticate` challenge for `authentication.realm`. Servers of a cluster forward a
//! client's credentials with the pull queries they ask each other.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::error::RestError;

/// ksqlDB's code for a request without valid credentials.
pub const UNAUTHORIZED: i64 = 40100;
/// ksqlDB's code for a user without an allowed role.
pub const FORBIDDEN: i64 = 40300;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Password {
    Plain(String),
    Md5(String),
}

impl Password {
    fn parse(text: &str) -> Self {
        match text.strip_prefix("MD5:") {
            Some(hex) => Self::Md5(hex.to_ascii_lowercase()),
            None => Self::Plain(text.to_string()),
        }
    }

    fn matches(&self, given: &str) -> bool {
        match self {
            Self::Plain(p) => constant_time_eq(p.as_bytes(), given.as_bytes()),
            Self::Md5(hex) => {
                use md5::Digest as _;
                let digest = md5::Md5::digest(given.as_bytes());
                let given: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                constant_time_eq(hex.as_bytes(), given.as_bytes())
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who may use the server.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    realm: String,
    users: HashMap<String, (Password, Vec<String>)>,
    roles: Option<Vec<String>>,
    skip_paths: Vec<String>,
}

impl BasicAuth {
    /// The authentication the server properties ask for (`None`: anyone may connect).
    pub fn from_properties(properties: &[(String, String)]) -> Result<Option<Self>, String> {
        let get = |name: &str| {
            properties
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        };
        match get("authentication.method").as_deref() {
            None | Some("NONE" | "none" | "") => return Ok(None),
            Some(m) if m.eq_ignore_ascii_case("BASIC") => {}
            Some(other) => {
                return Err(format!(
                    "authentication.method={other} is not supported (NONE or BASIC)"
                ));
            }
        }
        let file = get("authentication.basic.users.file")
            .ok_or("authentication.method=BASIC needs authentication.basic.users.file")?;
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
        let list = |v: Option<String>| -> Option<Vec<String>> {
            let items: Vec<String> = v?
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            (!items.is_empty() && !items.iter().any(|r| r == "*")).then_some(items)
        };
        Ok(Some(Self {
            realm: get("authentication.realm").unwrap_or_else(|| "KsqlServer-Props".into()),
            users: parse_users(&text),
            roles: list(get("authentication.roles")),
            skip_paths: list(get("authentication.skip.paths")).unwrap_or_default(),
        }))
    }

    /// Checks a request's `Authorization` header for `path`.
    fn check(&self, path: &str, authorization: Option<&str>) -> Result<(), RestError> {
        if self.skip_paths.iter().any(|p| p == path) {
            return Ok(());
        }
        let unauthorized = || RestError::generic(UNAUTHORIZED, "Unauthorized");
        let encoded = authorization
            .and_then(|h| {
                h.strip_prefix("Basic ")
                    .or_else(|| h.strip_prefix("basic "))
            })
            .ok_or_else(unauthorized)?;
        let decoded = (base64::engine::general_purpose::STANDARD.decode(encoded.trim()))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(unauthorized)?;
        let (user, password) = decoded.split_once(':').ok_or_else(unauthorized)?;
        let (expected, roles) = self.users.get(user).ok_or_else(unauthorized)?;
        if !expected.matches(password) {
            return Err(unauthorized());
        }
        match &self.roles {
            Some(allowed) if !roles.iter().any(|r| allowed.contains(r)) => Err(RestError::generic(
                FORBIDDEN,
                format!("User {user} is not permitted to access this server"),
            )),
            _ => Ok(()),
        }
    }
}

/// `user: password[,role...]` lines.
fn parse_users(text: &str) -> HashMap<String, (Password, Vec<String>)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|line| {
            let (user, rest) = line.split_once(':')?;
            let mut parts = rest.split(',').map(str::trim);
            let password = Password::parse(parts.next()?);
            let roles = parts
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect();
            Some((user.trim().to_string(), (password, roles)))
        })
        .collect()
}

tokio::task_local! {
    /// The `Authorization` header of the request being answered, for the requests it makes
    /// of the other servers.
    static CREDENTIALS: Option<HeaderValue>;
}

/// The credentials of the request this task answers, to pass on to another server.
pub fn forwarded() -> Option<HeaderValue> {
    CREDENTIALS.try_with(Clone::clone).ok().flatten()
}

/// `app` behind `auth` (unchanged without it).
pub fn protect(app: axum::Router, auth: Option<Arc<BasicAuth>>) -> axum::Router {
    match auth {
        Some(auth) => app.layer(axum::middleware::from_fn_with_state(auth, require)),
        None => app,
    }
}

/// The layer that answers unauthenticated requests with 401 (or 403).
pub async fn require(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    let authorization =
        (request.headers().get(header::AUTHORIZATION)).and_then(|v| v.to_str().ok());
    match auth.check(request.uri().path(), authorization) {
        Ok(()) => {
            let credentials = request.headers().get(header::AUTHORIZATION).cloned();
            CREDENTIALS.scope(credentials, next.run(request)).await
        }
        Err(e) => {
            let unauthorized = e.status() == StatusCode::UNAUTHORIZED;
            let mut response = e.into_response();
            let challenge = format!("Basic realm=\"{}\"", auth.realm);
            if let (true, Ok(value)) = (unauthorized, HeaderValue::from_str(&challenge)) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    #[test]
    fn users_roles_and_skipped_paths() {
        let auth = BasicAuth {
            realm: "KsqlServer-Props".into(),
            // MD5 of "letmein".
            users: parse_users(
                "# users\nfred: letmein,admin\nbarney: MD5:0d107d09f5bbe40cade3de5c71e9e9b7,user\nwilma: pebbles,guest\n",
            ),
            roles: Some(vec!["admin".into(), "user".into()]),
            skip_paths: vec!["/healthcheck".into()],
        };
        assert!(auth.check("/ksql", Some(&basic("fred:letmein"))).is_ok());
        assert!(auth.check("/ksql", Some(&basic("barney:letmein"))).is_ok());
        let code = |r: Result<(), RestError>| r.unwrap_err().status().as_u16();
        assert_eq!(code(auth.check("/ksql", Some(&basic("fred:nope")))), 401);
        assert_eq!(code(auth.check("/ksql", None)), 401);
        assert_eq!(code(auth.check("/ksql", Some("Bearer abc"))), 401);
        assert_eq!(
            code(auth.check("/ksql", Some(&basic("wilma:pebbles")))),
            403
        );
        assert!(auth.check("/healthcheck", None).is_ok());
    }
}

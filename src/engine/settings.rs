//! [`QuerySettings`]: the Kafka Streams and ksqlDB properties that change how a persistent
//! query runs, as ksqlDB reads them from `SET`, a request's `streamsProperties` or the
//! server's configuration (each also with the prefix `ksql.streams.` where Kafka Streams
//! owns it).
//!
//! A query keeps the settings its session had when it was created (they are logged with its
//! statement in the command topic); a setting it was not given is the server's
//! (`eddy server -p name=value`), else the default.

use crate::plan::PlanError;

/// The settings of one query; `None`: not given (the server's, else the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuerySettings {
    /// `processing.guarantee`.
    pub guarantee: Option<Guarantee>,
    /// `max.task.idle.ms`.
    pub task_idle: Option<TaskIdle>,
    /// `ksql.fail.on.production.error`: a result record the broker refuses (too large, say)
    /// stops the query (true, ksqlDB's default: state ERROR, retried with backoff) or goes
    /// to the processing log while the query goes on (false).
    pub fail_on_production_error: Option<bool>,
    /// `num.stream.threads`: threads (each a member of the query's group) that share the
    /// query's tasks on this server.
    pub stream_threads: Option<usize>,
    /// `num.standby.replicas`: warm copies of each task's state kept on other servers.
    pub standby_replicas: Option<usize>,
}

impl QuerySettings {
    /// The property names that set `ksql.fail.on.production.error`.
    pub const FAIL_ON_PRODUCTION_ERROR: [&str; 1] = ["ksql.fail.on.production.error"];
    /// The property names that set `num.stream.threads`.
    pub const STREAM_THREADS: [&str; 2] = ["num.stream.threads", "ksql.streams.num.stream.threads"];
    /// The property names that set `num.standby.replicas`.
    pub const STANDBY_REPLICAS: [&str; 2] =
        ["num.standby.replicas", "ksql.streams.num.standby.replicas"];

    /// Whether `name` is one of the settings' properties (which are not librdkafka's).
    pub fn is_setting(name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        Guarantee::PROPERTIES
            .iter()
            .chain(&TaskIdle::PROPERTIES)
            .chain(&Self::FAIL_ON_PRODUCTION_ERROR)
            .chain(&Self::STREAM_THREADS)
            .chain(&Self::STANDBY_REPLICAS)
            .any(|p| *p == name)
    }

    /// The settings `properties` give (later ones win); an invalid value is an error.
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, PlanError> {
        let mut settings = Self::default();
        for (name, value) in properties {
            let (name, value) = (name.as_ref().to_ascii_lowercase(), value.as_ref());
            if Guarantee::PROPERTIES.contains(&name.as_str()) {
                settings.guarantee = Some(Guarantee::parse(value)?);
            } else if TaskIdle::PROPERTIES.contains(&name.as_str()) {
                settings.task_idle = Some(TaskIdle::parse(value)?);
            } else if Self::FAIL_ON_PRODUCTION_ERROR.contains(&name.as_str()) {
                settings.fail_on_production_error = Some(parse_bool(&name, value)?);
            } else if Self::STREAM_THREADS.contains(&name.as_str()) {
                settings.stream_threads = Some(parse_count(&name, value, 1)?);
            } else if Self::STANDBY_REPLICAS.contains(&name.as_str()) {
                settings.standby_replicas = Some(parse_count(&name, value, 0)?);
            }
        }
        Ok(settings)
    }

    /// These settings, with those not given taken from `defaults`.
    pub fn or(self, defaults: Self) -> Self {
        Self {
            guarantee: self.guarantee.or(defaults.guarantee),
            task_idle: self.task_idle.or(defaults.task_idle),
            fail_on_production_error: self
                .fail_on_production_error
                .or(defaults.fail_on_production_error),
            stream_threads: self.stream_threads.or(defaults.stream_threads),
            standby_replicas: self.standby_replicas.or(defaults.standby_replicas),
        }
    }

    /// `num.stream.threads` (default 1; ksqlDB's is 4, for machines with more cores).
    pub fn stream_threads(&self) -> usize {
        self.stream_threads.unwrap_or(1)
    }

    /// `num.standby.replicas` (default 0, as in Kafka Streams and ksqlDB).
    pub fn standby_replicas(&self) -> usize {
        self.standby_replicas.unwrap_or(0)
    }

    /// The guarantee (default at-least-once).
    pub fn guarantee(&self) -> Guarantee {
        self.guarantee.unwrap_or_default()
    }

    /// `max.task.idle.ms` (default 0).
    pub fn task_idle(&self) -> TaskIdle {
        self.task_idle.unwrap_or_default()
    }

    /// `ksql.fail.on.production.error` (default true).
    pub fn fail_on_production_error(&self) -> bool {
        self.fail_on_production_error.unwrap_or(true)
    }
}

/// A count of threads or replicas: at least `least`.
fn parse_count(name: &str, value: &str, least: usize) -> Result<usize, PlanError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= least => Ok(n),
        _ => Err(PlanError::Invalid(format!(
            "Invalid value {value} for configuration {name}: Value must be at least {least}"
        ))),
    }
}

/// A boolean property's value, as Java's `Boolean.parseBoolean` after ksqlDB's validation.
fn parse_bool(name: &str, value: &str) -> Result<bool, PlanError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(PlanError::Invalid(format!(
            "Invalid value {value} for configuration {name}: Expected value to be either true or false"
        ))),
    }
}

/// Kafka Streams' (and ksqlDB's) `processing.guarantee` of a persistent query. Either way a
/// query's state is exact after a crash; the guarantee says whether its sink records may be
/// written twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Guarantee {
    /// Sink records since the last commit are written again after a crash.
    #[default]
    AtLeastOnce,
    /// Sink records are written in the commit's transaction: a `read_committed` reader sees
    /// each exactly once.
    ExactlyOnce,
}

impl Guarantee {
    /// The property names that set it.
    pub const PROPERTIES: [&str; 2] = ["processing.guarantee", "ksql.streams.processing.guarantee"];

    /// Reads a value of `processing.guarantee`, as Kafka Streams accepts them.
    pub fn parse(value: &str) -> Result<Self, PlanError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "at_least_once" => Ok(Self::AtLeastOnce),
            "exactly_once" | "exactly_once_beta" | "exactly_once_v2" => Ok(Self::ExactlyOnce),
            _ => Err(PlanError::Invalid(format!(
                "Invalid value {value} for configuration processing.guarantee: String must be one of: at_least_once, exactly_once, exactly_once_beta, exactly_once_v2"
            ))),
        }
    }
}

/// Kafka Streams' (and ksqlDB's) `max.task.idle.ms` of a query that reads several topics (a
/// join): how long a task whose buffer of one input is empty waits before it processes the
/// other inputs' records, which a record of the empty input with an older timestamp would
/// have to precede.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskIdle {
    /// `-1`: never waits; records are processed as they are fetched.
    Never,
    /// `0`, the default: waits only while the broker holds records of the empty input that
    /// this server has not fetched yet, so records already written are processed in
    /// timestamp order.
    #[default]
    UntilFetched,
    /// `n > 0`: also waits up to `n` milliseconds for producers to write more, for inputs
    /// written at the same time whose records reach the broker late.
    For(std::time::Duration),
}

impl TaskIdle {
    /// The property names that set it.
    pub const PROPERTIES: [&str; 2] = ["max.task.idle.ms", "ksql.streams.max.task.idle.ms"];

    /// Reads a value of `max.task.idle.ms`: milliseconds, at least `-1`.
    pub fn parse(value: &str) -> Result<Self, PlanError> {
        match value.trim().parse::<i64>() {
            Ok(-1) => Ok(Self::Never),
            Ok(0) => Ok(Self::UntilFetched),
            Ok(ms) if ms > 0 => Ok(Self::For(std::time::Duration::from_millis(ms as u64))),
            _ => Err(PlanError::Invalid(format!(
                "Invalid value {value} for configuration max.task.idle.ms: Value must be a number of milliseconds, at least -1"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Guarantee, QuerySettings, TaskIdle};

    #[test]
    fn streams_settings_read_as_kafka_streams_reads_them() {
        assert_eq!(TaskIdle::parse("-1").unwrap(), TaskIdle::Never);
        assert_eq!(TaskIdle::parse("0").unwrap(), TaskIdle::UntilFetched);
        assert_eq!(
            TaskIdle::parse(" 250 ").unwrap(),
            TaskIdle::For(Duration::from_millis(250))
        );
        for bad in ["-2", "soon", "1.5", ""] {
            let e = TaskIdle::parse(bad).unwrap_err().to_string();
            assert!(e.contains("max.task.idle.ms"), "{bad}: {e}");
        }
        assert_eq!(
            Guarantee::parse("EXACTLY_ONCE_V2").unwrap(),
            Guarantee::ExactlyOnce
        );
        assert!(Guarantee::parse("twice").is_err());
    }

    #[test]
    fn settings_come_from_properties_and_fall_back_to_the_servers() {
        let session = QuerySettings::from_properties([
            ("ksql.streams.processing.guarantee", "exactly_once_v2"),
            ("KSQL.FAIL.ON.PRODUCTION.ERROR", "false"),
            ("auto.offset.reset", "earliest"),
        ])
        .unwrap();
        let server = QuerySettings::from_properties([("max.task.idle.ms", "100")]).unwrap();
        let settings = session.or(server);
        assert_eq!(settings.guarantee(), Guarantee::ExactlyOnce);
        assert_eq!(
            settings.task_idle(),
            TaskIdle::For(Duration::from_millis(100))
        );
        assert!(!settings.fail_on_production_error());
        assert!(QuerySettings::default().fail_on_production_error());
        let e = QuerySettings::from_properties([("ksql.fail.on.production.error", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("true or false"), "{e}");
        assert!(QuerySettings::is_setting("Max.Task.Idle.Ms"));
        let threads = QuerySettings::from_properties([("ksql.streams.num.stream.threads", "3")]);
        assert_eq!(threads.unwrap().stream_threads(), 3);
        assert_eq!(QuerySettings::default().stream_threads(), 1);
        assert!(QuerySettings::from_properties([("num.stream.threads", "0")]).is_err());
        let standbys = QuerySettings::from_properties([("ksql.streams.num.standby.replicas", "1")]);
        assert_eq!(standbys.unwrap().standby_replicas(), 1);
        assert_eq!(QuerySettings::default().standby_replicas(), 0);
        assert!(QuerySettings::from_properties([("num.standby.replicas", "-1")]).is_err());
        assert!(!QuerySettings::is_setting("linger.ms"));
    }
}

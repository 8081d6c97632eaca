//! Errors raised while turning a statement into catalog changes and a runnable plan.
//!
//! Messages follow ksqlDB's wording where its tests check them (e.g. `Column 'X' cannot be
//! resolved.`), so the `expectedException` cases of its suite can match them.

/// A statement that is valid SQL but cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A stream or table that is not in the catalog.
    #[error("{0} does not exist.")]
    UnknownSource(String),
    /// A stream or table that already exists.
    #[error("Cannot add {kind} '{name}': A {kind} with the same name already exists")]
    SourceExists {
        /// `stream` or `table`.
        kind: String,
        /// The name.
        name: String,
    },
    /// A column that is not in scope.
    #[error("Column '{0}' cannot be resolved.")]
    UnknownColumn(String),
    /// A column that is not in scope of a clause (`WHERE`, `SELECT`, ...).
    #[error("{clause} column '{column}' cannot be resolved.")]
    UnknownColumnIn {
        /// The clause.
        clause: &'static str,
        /// The column, as written (qualified if it was).
        column: String,
    },
    /// A function Eddy does not know.
    #[error("Can't find any functions with the name '{0}'")]
    UnknownFunction(String),
    /// Valid SQL that breaks one of ksqlDB's semantic rules.
    #[error("{0}")]
    Invalid(String),
    /// An expression whose types ksqlDB refuses; reported with the clause it is in
    /// (`Invalid Predicate: ...` in WHERE, `Invalid Select: ...` in SELECT).
    #[error("{0}")]
    Type(String),
    /// Valid ksqlDB that Eddy does not implement yet.
    #[error("not supported yet: {0}")]
    Unsupported(String),
    /// A push query that needs a consumer of its own, with as many running as allowed
    /// (ksqlDB's `ksql.max.push.queries`).
    #[error(
        "Not executing statement(s) as it would cause the number of active, push queries to exceed the configured limit. Terminate existing PUSH queries, or increase the 'ksql.max.push.queries' setting. Current push query count: {0}. Configured limit: {0}."
    )]
    PushQueryLimit(usize),
    /// The declared formats cannot carry the declared columns.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
    /// DataFusion rejected an expression (usually a type mismatch).
    #[error(transparent)]
    DataFusion(#[from] datafusion_common::DataFusionError),
    /// Arrow rejected a schema.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

impl PlanError {
    /// An unknown column reported as ksqlDB does in `clause`.
    pub fn in_clause(self, clause: &'static str) -> Self {
        match self {
            PlanError::UnknownColumn(column) => PlanError::UnknownColumnIn { clause, column },
            PlanError::Invalid(message)
                if message.starts_with("Cannot compare")
                    || message.starts_with("Comparison with NULL not supported")
                    || message.starts_with("Error processing expression") =>
            {
                PlanError::Invalid(format!("Error in {clause} expression: {message}"))
            }
            PlanError::Type(message) => match clause {
                "WHERE" => PlanError::Invalid(format!("Invalid Predicate: {message}")),
                "SELECT" => PlanError::Invalid(format!("Invalid Select: {message}")),
                _ => PlanError::Type(message),
            },
            other => other,
        }
    }
}

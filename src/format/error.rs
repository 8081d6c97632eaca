//! Errors of the format layer: a record's bytes did not match its declared schema, or a
//! `WITH` clause named a format Eddy does not know.

/// A failure to decode or encode one record, or an unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The format name in `KEY_FORMAT`/`VALUE_FORMAT`/`FORMAT` is not one Eddy supports.
    #[error("Unknown format: {0}")]
    UnknownFormat(String),
    /// The format cannot be used where it was declared (e.g. NONE for values).
    #[error("{0}")]
    Unsupported(String),
    /// A record's key could not be decoded.
    #[error("Failed to deserialize key: {0}")]
    Key(String),
    /// A record's value could not be decoded.
    #[error("Failed to deserialize value: {0}")]
    Value(String),
}

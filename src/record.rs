//! [`Record`]: a Kafka record as bytes, the unit drivers hand to the engine and take back.
//!
//! Both drivers speak this type: the Kafka runtime ([`crate::kafka`]) converts rdkafka
//! messages to and from it, and the in-memory driver ([`crate::testing`]) stores it in its
//! topics. Decoding into Arrow is [`crate::format`]'s job, not this file's.

/// The time now, as a record timestamp: milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A record header: its key and value (a header's value may be null).
pub type Header = (String, Option<Vec<u8>>);

/// One Kafka record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The topic it was read from or is written to.
    pub topic: String,
    /// The partition (for output records, `None` lets the driver choose by key).
    pub partition: Option<i32>,
    /// The offset in its partition (input records only).
    pub offset: i64,
    /// Key bytes; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Record timestamp, epoch milliseconds.
    pub timestamp: i64,
    /// Headers in order. Read into a source's `HEADERS` and `HEADER('k')` columns.
    pub headers: Vec<Header>,
}

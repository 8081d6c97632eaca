//! Topics no statement may write: Eddy's own internal topics (command and cluster topics,
//! the schema registry's store, queries' changelog, repartition and foreign-key topics),
//! whichever service id they carry, and Kafka's and ksqlDB's, as ksqlDB's
//! `ReservedInternalTopics` keeps its own read-only. Reading them (a stream over one,
//! `PRINT`) stays allowed.

/// Suffixes of the topics a query's tasks own (`<service-id>-query-<id>-<name>`).
const QUERY_TOPICS: &[&str] = &[
    "-changelog",
    "-repartition",
    "-SUBSCRIPTION-REGISTRATION-topic",
    "-SUBSCRIPTION-RESPONSE-topic",
];

/// Whether statements must not write to `topic`.
pub fn is_read_only(topic: &str) -> bool {
    topic.starts_with("_eddy")
        || topic.starts_with("__")
        || topic.starts_with("_confluent")
        || topic == "_schemas"
        || (topic.contains("-query-") && QUERY_TOPICS.iter().any(|s| topic.ends_with(s)))
}

/// ksqlDB's refusal of a statement writing to `topic`.
pub fn refusal(topic: &str) -> String {
    format!("Cannot insert into read-only topic: {topic}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_topics_of_any_service_are_read_only() {
        for topic in [
            "_eddy-shop_-command",
            "_eddy-other-cluster",
            "_eddy_schemas",
            "__consumer_offsets",
            "__transaction_state",
            "_confluent-ksql-default__command_topic",
            "shop_-query-CTAS_T_3-Aggregate-Materialize-changelog",
            "x-query-CSAS_J_1-Join-right-repartition",
            "x-query-CTAS_F_2-FK-JOIN-SUBSCRIPTION-REGISTRATION-topic",
        ] {
            assert!(is_read_only(topic), "{topic}");
        }
        for topic in ["orders", "orders-changelog", "query-results", "_private"] {
            assert!(!is_read_only(topic), "{topic}");
        }
    }
}

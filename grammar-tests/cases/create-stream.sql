CREATE STREAM authorizations (card_number VARCHAR KEY, amount DOUBLE, merchant VARCHAR)
  WITH (KAFKA_TOPIC='authorizations', VALUE_FORMAT='JSON', PARTITIONS=2);

CREATE STREAM IF NOT EXISTS enriched WITH (KAFKA_TOPIC='enriched', VALUE_FORMAT='JSON') AS
  SELECT *, o.*, o.id AS order_id, UCASE(o.state) state_upper, price * quantity AS total
  FROM orders AS o WHERE o.quantity > 0 AND o.state IS NOT NULL PARTITION BY o.customerId EMIT CHANGES;

-- The talk's fraud rule: a card used more than 3 times within 5 minutes is possibly stolen.
-- Input: JSON authorizations keyed by card number. Output: POSSIBLE_FRAUD, a windowed table
-- whose key is the card (plus the window start) and whose value is the attempt count.

CREATE STREAM authorizations (card_number VARCHAR KEY, amount DOUBLE, merchant VARCHAR)
  WITH (KAFKA_TOPIC='authorizations', VALUE_FORMAT='JSON', PARTITIONS=2);

-- Every change past the threshold, as it happens (4, 5, 6... attempts).
CREATE TABLE possible_fraud AS
  SELECT card_number, COUNT(*) AS attempts
  FROM authorizations WINDOW TUMBLING (SIZE 5 MINUTES)
  GROUP BY card_number
  HAVING COUNT(*) > 3
  EMIT CHANGES;

-- The same rule, one row per card and window, written once the window has closed (no grace
-- period: a late authorization is dropped). Windows close as the partition's stream time
-- passes their end. As in ksqlDB, a window is kept for its RETENTION (by default size plus
-- grace): if a partition's stream time jumps further than that past a window before it is
-- emitted (a quiet partition, then a burst), the window expires unseen. An hour keeps
-- quiet spells from losing alerts.
CREATE TABLE possible_fraud_final AS
  SELECT card_number, COUNT(*) AS attempts
  FROM authorizations WINDOW TUMBLING (SIZE 5 MINUTES, RETENTION 1 HOUR, GRACE PERIOD 0 SECONDS)
  GROUP BY card_number
  HAVING COUNT(*) > 3
  EMIT FINAL;

CREATE TABLE possible_fraud AS
  SELECT card_number, COUNT(*) AS attempts
  FROM authorizations WINDOW TUMBLING (SIZE 5 MINUTES)
  GROUP BY card_number HAVING COUNT(*) > 3 EMIT CHANGES;

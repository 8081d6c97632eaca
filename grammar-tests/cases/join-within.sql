CREATE STREAM emails AS
  SELECT o.id, p.amount, c.email
  FROM orders o
  INNER JOIN payments p WITHIN (0 SECONDS, 1 MINUTE) GRACE PERIOD 10 SECONDS ON o.id = p.id
  LEFT OUTER JOIN customers c ON o.customerId = c.id
  EMIT CHANGES;

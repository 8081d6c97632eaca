-- Email (the demo's EmailService): every order record and payment of that order within one
-- minute of each other (either first; inclusive), joined with the order's customer, is an
-- email to send. As in the demo, orders are not filtered by state (an order whose CREATED and
-- VALIDATED records both fall within the minute gets two emails), and an unknown customer
-- means no email. Payments are keyed by payment id: the join re-keys them by order id.

CREATE STREAM orders_paid WITH (KAFKA_TOPIC='eddy-orders-paid') AS
  SELECT o.order_key AS order_key, o.`customerId` AS customer_id, o.`state` AS state,
         o.`product` AS product, p.`id` AS payment_id, p.`amount` AS amount, p.`ccy` AS ccy
  FROM orders o
  JOIN payments p WITHIN 1 MINUTE ON o.order_key = p.`orderId`;

CREATE STREAM emails WITH (KAFKA_TOPIC='emails') AS
  SELECT op.customer_id AS customer_id, op.order_key AS order_id, op.state AS state,
         op.payment_id AS payment_id, op.amount AS amount, op.ccy AS ccy,
         c.`firstName` AS first_name, c.`lastName` AS last_name, c.`email` AS email,
         c.`level` AS level
  FROM orders_paid op
  JOIN customers c ON op.customer_id = c.customer_key;

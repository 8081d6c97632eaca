-- Fraud check (the demo's FraudService): a customer's CREATED orders are summed
-- (quantity * price) over a session with a one-hour inactivity gap (an order exactly one hour
-- after the previous one is in the same session); an order whose session total, itself
-- included, reaches 2000 fails, and so does every later order of that session. One
-- FRAUD_CHECK result per CREATED order.
--
-- The running session total is a FOLD (Eddy's per-key fold, see docs/fold.md) over each
-- customer's orders: one result per order, where a session-window aggregation would give
-- one row per session. It assumes each customer's orders arrive in event-time order.

-- Re-keyed by customer, so that one task folds each customer's orders in order.
CREATE STREAM fraud_orders_by_customer WITH (KAFKA_TOPIC='eddy-fraud-orders-by-customer') AS
  SELECT `customerId`, `id` AS order_id, `quantity` * `price` AS order_value
  FROM orders
  WHERE `state` = 'CREATED'
  PARTITION BY `customerId`;

CREATE STREAM fraud_sessions WITH (KAFKA_TOPIC='eddy-fraud-sessions') AS
  SELECT `customerId`, order_id,
         FOLD(STRUCT(total := CAST(0 AS DOUBLE), last_order := CAST(0 AS BIGINT)),
              s => STRUCT(total := CASE WHEN ROWTIME - s->last_order <= 3600000
                                        THEN s->total + order_value ELSE order_value END,
                          last_order := ROWTIME))
           OVER (PARTITION BY `customerId`) AS session
  FROM fraud_orders_by_customer;

INSERT INTO order_validations
  SELECT order_id AS order_key, AS_VALUE(order_id) AS `orderId`, 'FRAUD_CHECK' AS `checkType`,
         CASE WHEN session->total >= 2000 THEN 'FAIL' ELSE 'PASS' END AS `validationResult`
  FROM fraud_sessions
  PARTITION BY order_id;

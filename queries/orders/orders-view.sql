-- Orders view (the demo's OrdersService view, the Q in CQRS): each order's latest state,
-- from the orders as posted and the validations' decisions, as a table that pull queries
-- read: SELECT * FROM orders_view WHERE order_key = 'o1';

CREATE STREAM order_updates WITH (KAFKA_TOPIC='eddy-order-updates') AS
  SELECT * FROM orders;

INSERT INTO order_updates SELECT * FROM orders_state;

CREATE TABLE orders_view WITH (KAFKA_TOPIC='orders-view') AS
  SELECT order_key,
         LATEST_BY_OFFSET(`state`) AS state,
         LATEST_BY_OFFSET(`customerId`) AS customer_id,
         LATEST_BY_OFFSET(`product`) AS product,
         LATEST_BY_OFFSET(`quantity`) AS quantity,
         LATEST_BY_OFFSET(`price`) AS price,
         COUNT(*) AS updates
  FROM order_updates
  GROUP BY order_key;

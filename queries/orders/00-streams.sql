-- The orders system's shared topics, as the Confluent microservices demo names and shapes
-- them (JSON values with the demo's field names; ids are strings, customer ids longs).
-- Every service file in this folder reads these declarations; tests load this file first.
--
--   orders               key: order id          value: {id, customerId, state, product, quantity, price}
--   order-validations    key: order id          value: {orderId, checkType, validationResult}
--   payments             key: payment id        value: {id, orderId, ccy, amount}
--   customers            key: customer id (8-byte long)  value: {id, firstName, lastName, email, address, level}
--   warehouse-inventory  key: product name      value: stock count (4-byte int, KAFKA format)
--   orders-state         key: order id          value: an order whose state the validations decided

CREATE STREAM orders (
    order_key VARCHAR KEY, `id` VARCHAR, `customerId` BIGINT, `state` VARCHAR,
    `product` VARCHAR, `quantity` INT, `price` DOUBLE
  ) WITH (KAFKA_TOPIC='orders', VALUE_FORMAT='JSON', PARTITIONS=2);

CREATE STREAM order_validations (
    order_key VARCHAR KEY, `orderId` VARCHAR, `checkType` VARCHAR, `validationResult` VARCHAR
  ) WITH (KAFKA_TOPIC='order-validations', VALUE_FORMAT='JSON', PARTITIONS=2);

CREATE STREAM payments (
    payment_key VARCHAR KEY, `id` VARCHAR, `orderId` VARCHAR, `ccy` VARCHAR, `amount` DOUBLE
  ) WITH (KAFKA_TOPIC='payments', VALUE_FORMAT='JSON', PARTITIONS=2);

CREATE TABLE customers (
    customer_key BIGINT PRIMARY KEY, `id` BIGINT, `firstName` VARCHAR, `lastName` VARCHAR,
    `email` VARCHAR, `address` VARCHAR, `level` VARCHAR
  ) WITH (KAFKA_TOPIC='customers', VALUE_FORMAT='JSON', PARTITIONS=2);

CREATE TABLE warehouse_inventory (product VARCHAR PRIMARY KEY, stock INT)
  WITH (KAFKA_TOPIC='warehouse-inventory', VALUE_FORMAT='KAFKA', PARTITIONS=2);

-- The validations aggregator's decisions: the order with its new state (VALIDATED or FAILED).
CREATE STREAM orders_state (
    order_key VARCHAR KEY, `id` VARCHAR, `customerId` BIGINT, `state` VARCHAR,
    `product` VARCHAR, `quantity` INT, `price` DOUBLE
  ) WITH (KAFKA_TOPIC='orders-state', VALUE_FORMAT='JSON', PARTITIONS=2);

-- Inventory check (the demo's InventoryService): a CREATED order of a stocked product passes
-- when the stock, minus what earlier passing orders reserved, minus its quantity, stays at or
-- above zero; only passing orders reserve (reservations are never released, as in the demo).
-- An order of a product with no stock row yet gets no result (inner join).
--
-- Plain ksqlDB cannot say this exactly: each decision depends on the earlier decisions. The
-- reservation is a FOLD (Eddy's per-key fold, see docs/fold.md) over each product's orders,
-- its state the reserved quantity and whether the latest order passed.

-- The stock counts as a JSON table (ksqlDB joins no KAFKA-format values).
CREATE TABLE inventory_stock WITH (KAFKA_TOPIC='eddy-inventory-stock', VALUE_FORMAT='JSON') AS
  SELECT product, stock FROM warehouse_inventory;

-- Re-keyed by product, as the stock table is, so that one task folds each product's orders.
CREATE STREAM inventory_orders_by_product WITH (KAFKA_TOPIC='eddy-inventory-orders-by-product') AS
  SELECT `product`, `id` AS order_id, `quantity` AS quantity
  FROM orders
  WHERE `state` = 'CREATED'
  PARTITION BY `product`;

CREATE STREAM inventory_reservations WITH (KAFKA_TOPIC='eddy-inventory-reservations') AS
  SELECT o.`product` AS product, o.order_id AS order_id, i.stock AS stock,
         FOLD(STRUCT(reserved := CAST(0 AS BIGINT), passed := false),
              r => CASE WHEN i.stock - r->reserved - o.quantity >= 0
                        THEN STRUCT(reserved := r->reserved + o.quantity, passed := true)
                        ELSE STRUCT(reserved := r->reserved, passed := false) END)
           OVER (PARTITION BY o.`product`) AS reservation
  FROM inventory_orders_by_product o
  JOIN inventory_stock i ON o.`product` = i.product;

INSERT INTO order_validations
  SELECT order_id AS order_key, AS_VALUE(order_id) AS `orderId`, 'INVENTORY_CHECK' AS `checkType`,
         CASE WHEN reservation->passed THEN 'PASS' ELSE 'FAIL' END AS `validationResult`
  FROM inventory_reservations
  PARTITION BY order_id;

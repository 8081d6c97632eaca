-- Order details check (the demo's OrderDetailsService): a CREATED order passes when its
-- quantity and price are not negative and it names a product (zero quantity or price pass;
-- a missing quantity or price fails). One ORDER_DETAILS_CHECK result per CREATED order.

INSERT INTO order_validations
  SELECT order_key, `id` AS `orderId`, 'ORDER_DETAILS_CHECK' AS `checkType`,
         CASE WHEN `quantity` >= 0 AND `price` >= 0 AND `product` IS NOT NULL
              THEN 'PASS' ELSE 'FAIL' END AS `validationResult`
  FROM orders
  WHERE `state` = 'CREATED';

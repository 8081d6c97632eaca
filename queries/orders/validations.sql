-- Validations aggregator (the demo's ValidationsAggregatorService): an order whose
-- validations include 3 PASS results within a session of 5-minute inactivity becomes
-- VALIDATED; a FAIL makes it FAILED. The first decision wins and is written once. ERROR
-- results count towards neither (the order stays CREATED). The decision is joined with the
-- CREATED order within 5 minutes (inclusive) and the order, with its new state, goes to
-- orders-state.
--
-- The per-order count is a FOLD (Eddy's per-key fold, see docs/fold.md) over the order's
-- validations; `decided` remembers the decision, `emit` holds it only on the record that
-- made it (empty otherwise).

CREATE STREAM validation_decisions WITH (KAFKA_TOPIC='eddy-validation-decisions') AS
  SELECT order_key,
         FOLD(STRUCT(passes := 0, last_result := CAST(0 AS BIGINT), decided := '', emit := ''),
              v => CASE
                WHEN v->decided <> ''
                  THEN STRUCT(passes := v->passes, last_result := ROWTIME, decided := v->decided, emit := '')
                WHEN `validationResult` = 'FAIL'
                  THEN STRUCT(passes := v->passes, last_result := ROWTIME, decided := 'FAILED', emit := 'FAILED')
                WHEN `validationResult` = 'PASS'
                     AND (CASE WHEN ROWTIME - v->last_result <= 300000 THEN v->passes ELSE 0 END) >= 2
                  THEN STRUCT(passes := 3, last_result := ROWTIME, decided := 'VALIDATED', emit := 'VALIDATED')
                ELSE STRUCT(
                  passes := (CASE WHEN ROWTIME - v->last_result <= 300000 THEN v->passes ELSE 0 END)
                            + (CASE WHEN `validationResult` = 'PASS' THEN 1 ELSE 0 END),
                  last_result := ROWTIME, decided := '', emit := '')
              END)
           OVER (PARTITION BY order_key) AS decision
  FROM order_validations;

INSERT INTO orders_state
  SELECT o.order_key AS order_key, o.`id` AS `id`, o.`customerId` AS `customerId`,
         d.decision->emit AS `state`, o.`product` AS `product`, o.`quantity` AS `quantity`,
         o.`price` AS `price`
  FROM validation_decisions d
  JOIN orders o WITHIN 5 MINUTES ON d.order_key = o.order_key
  WHERE d.decision->emit <> '' AND o.`state` = 'CREATED';

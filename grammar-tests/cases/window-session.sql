SELECT customerId, SUM(price) AS total FROM orders WINDOW SESSION (1 HOUR) GROUP BY customerId EMIT CHANGES;

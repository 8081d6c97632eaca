-- GROUP BY and PARTITION BY take values: a condition needs parentheses.
SELECT COUNT(*) FROM s GROUP BY a AND b EMIT CHANGES;

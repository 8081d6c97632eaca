-- A `>>` closing two nested structs is followed by more columns.
CREATE STREAM s (c1 STRUCT<person STRUCT<name STRING>>, c2 ARRAY<INT>, c3 VARCHAR(STRING))
  WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');

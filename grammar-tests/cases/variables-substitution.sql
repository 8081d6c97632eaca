DEFINE format = 'JSON';
DEFINE name = 'orders';
CREATE STREAM ${name} (id INT KEY) WITH (KAFKA_TOPIC='${name}_topic', VALUE_FORMAT='${format}');

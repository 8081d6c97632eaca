DEFINE topic = 'orders';
UNDEFINE topic;
CREATE STREAM s (a INT) WITH (KAFKA_TOPIC='${topic}', VALUE_FORMAT='JSON');

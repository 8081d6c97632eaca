"""Confluent's Python serializers against Eddy's Schema Registry, as another application would
use them: `produce` writes records with AvroSerializer, ProtobufSerializer or JSONSerializer
(each registering its schema), `consume` reads a topic with the matching deserializer (each
fetching the writer's schema by the id in the record) and prints one JSON value per line.

    schema_registry.py produce|consume avro|protobuf|json TOPIC COUNT REGISTRY_URL BOOTSTRAP
"""

import json
import sys

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

AVRO = json.dumps({
    "type": "record",
    "name": "Payment",
    "namespace": "io.example",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "amount", "type": "double"},
    ],
})

JSON_SCHEMA = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Payment",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "amount": {"type": "number"},
    },
    "required": ["id", "name", "amount"],
})


def message_class(name, fields):
    """A Protobuf message class built at run time: fields are (name, number, type)."""
    file = descriptor_pb2.FileDescriptorProto(name=f"{name.lower()}.proto", package="example", syntax="proto3")
    message = file.message_type.add(name=name)
    for field, number, kind in fields:
        message.field.add(name=field, number=number, type=kind,
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"example.{name}"))


T = descriptor_pb2.FieldDescriptorProto
PAYMENT = message_class("Payment", [("id", 1, T.TYPE_INT64), ("name", 2, T.TYPE_STRING), ("amount", 3, T.TYPE_DOUBLE)])
# What Eddy's sink writes: ksqlDB's schema for the columns ID, NAME, DOUBLED.
RESULT = message_class("Result", [("ID", 1, T.TYPE_INT64), ("NAME", 2, T.TYPE_STRING), ("DOUBLED", 3, T.TYPE_DOUBLE)])


def produce(fmt, topic, count, registry, bootstrap):
    if fmt == "avro":
        serialize = AvroSerializer(registry, AVRO)
        make = lambda v: v
    elif fmt == "json":
        serialize = JSONSerializer(JSON_SCHEMA, registry)
        make = lambda v: v
    else:
        serialize = ProtobufSerializer(PAYMENT, registry, {"use.deprecated.format": False})
        make = lambda v: PAYMENT(**v)
    keys = StringSerializer()
    # Four partitions, created here as a producing application's deployment would.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 4, 1)]).values():
        try:
            future.result()
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(1, count + 1):
        value = {"id": i, "name": f"payment-{i}", "amount": i * 1.5}
        context = SerializationContext(topic, MessageField.VALUE)
        producer.produce(topic, key=keys(f"k{i}"), value=serialize(make(value), context))
    if producer.flush(30):
        raise SystemExit(f"records for {topic} were not delivered")


def consume(fmt, topic, count, registry, bootstrap):
    if fmt == "avro":
        deserialize = AvroDeserializer(registry)
        plain = lambda v: v
    elif fmt == "json":
        deserialize = JSONDeserializer(None, schema_registry_client=registry)
        plain = lambda v: v
    else:
        deserialize = ProtobufDeserializer(RESULT, {"use.deprecated.format": False}, registry)
        plain = lambda m: {f.name: getattr(m, f.name) for f in m.DESCRIPTOR.fields}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"sr-check-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen, idle = 0, 0
    while seen < count and idle < 60:
        message = consumer.poll(1.0)
        if message is None:
            idle += 1
            continue
        if message.error():
            raise SystemExit(f"consuming {topic}: {message.error()}")
        value = deserialize(message.value(), SerializationContext(topic, MessageField.VALUE))
        print(json.dumps(plain(value), sort_keys=True), flush=True)
        seen += 1
    consumer.close()


def main():
    action, fmt, topic, count, url, bootstrap = sys.argv[1:7]
    registry = SchemaRegistryClient({"url": url})
    (produce if action == "produce" else consume)(fmt, topic, int(count), registry, bootstrap)


if __name__ == "__main__":
    main()

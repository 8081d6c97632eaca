// The Kafka Streams contender of Eddy's benchmark: the talk's fraud rule, written as a Kafka
// Streams application would write it. It counts authorizations per card (the record key) in
// 5-minute tumbling windows with no grace, keeps the counts above 3, and writes them to the
// output topic encoded as Eddy (and ksqlDB) encode a windowed table: key = the card's UTF-8
// bytes then the window start as 8 big-endian bytes, value = {"ATTEMPTS":n}.
//
// Usage: java -cp 'jars/*:classes' WindowedCount BOOTSTRAP INPUT OUTPUT APP_ID MODE STORE STATE_DIR
//   MODE  = changes (every update, through the record cache) | final (suppress until the window closes)
//   STORE = rocksdb (persistent store, changelog topic) | memory (in-memory store, no changelog)
// It runs until SIGTERM. Settings that shape the result are printed at start.

import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowStore;

public final class WindowedCount {
  private static final Duration SIZE = Duration.ofMinutes(5);

  public static void main(String[] args) throws InterruptedException {
    if (args.length != 7) {
      System.err.println("usage: WindowedCount BOOTSTRAP INPUT OUTPUT APP_ID changes|final rocksdb|memory STATE_DIR");
      System.exit(2);
    }
    String bootstrap = args[0], input = args[1], output = args[2], appId = args[3];
    boolean emitFinal = args[4].equals("final");
    boolean inMemory = args[5].equals("memory");

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.STATE_DIR_CONFIG, args[6]);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    // Eddy commits every second; Kafka Streams' default is 30 s.
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ProducerConfig.LINGER_MS_CONFIG, 5);

    StreamsBuilder builder = new StreamsBuilder();
    TimeWindows windows = TimeWindows.ofSizeWithNoGrace(SIZE);
    Materialized<String, Long, WindowStore<Bytes, byte[]>> store = inMemory
        ? Materialized.<String, Long>as(Stores.inMemoryWindowStore("counts", SIZE, SIZE, false)).withLoggingDisabled()
        : Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("counts");
    KTable<Windowed<String>, Long> counts = builder
        .stream(input, Consumed.with(Serdes.String(), Serdes.String()))
        .groupByKey()
        .windowedBy(windows)
        .count(store.withKeySerde(Serdes.String()).withValueSerde(Serdes.Long()));
    if (emitFinal) {
      counts = counts.suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()));
    }
    counts.toStream()
        .filter((window, n) -> n != null && n > 3)
        .map((window, n) -> KeyValue.pair(window, "{\"ATTEMPTS\":" + n + "}"))
        .to(output, Produced.with(
            WindowedSerdes.timeWindowedSerdeFrom(String.class, SIZE.toMillis()), Serdes.String()));

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(20));
      stopped.countDown();
    }));
    System.err.printf("kafka streams %s: mode=%s store=%s threads=1 commit.interval.ms=1000 "
        + "statestore.cache.max.bytes=10485760 (default) linger.ms=5%n",
        appId, args[4], args[5]);
    streams.start();
    stopped.await();
  }
}

// Java (kafka-clients 4.3) members of a KIP-848 group (group.protocol=consumer)
// consuming until they have read `expected` records together, committing each
// poll's records; crates/herald/tests/kip848_restart.rs restarts the broker
// under them. Prints "MEMBER i id", "ASSIGNED i [partitions]" and
// "REVOKED i [partitions]" from the rebalance listener (until the member
// closes: closing revokes everything), "RECORD i p o", and at
// the end "EPOCH i memberId epoch" and "RECEIVED n".
// Args: bootstrap topic group members expected timeout_secs
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class Kip848RestartCheck {
    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String group = args[2];
        int members = Integer.parseInt(args[3]);
        int expected = Integer.parseInt(args[4]);
        long deadline = System.currentTimeMillis() + Long.parseLong(args[5]) * 1000;
        AtomicInteger received = new AtomicInteger();
        Thread[] threads = new Thread[members];
        for (int m = 0; m < members; m++) {
            final int i = m;
            threads[m] = new Thread(() -> {
                Properties p = new Properties();
                p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
                p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
                p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
                p.put(ConsumerConfig.CLIENT_ID_CONFIG, "java-member-" + i);
                p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
                p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
                p.put(ConsumerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
                p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
                p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
                AtomicBoolean closing = new AtomicBoolean();
                try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
                    c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                        public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                            if (!ps.isEmpty() && !closing.get()) say("ASSIGNED " + i + " " + ps);
                        }
                        public void onPartitionsRevoked(Collection<TopicPartition> ps) {
                            if (!ps.isEmpty() && !closing.get()) say("REVOKED " + i + " " + ps);
                        }
                        public void onPartitionsLost(Collection<TopicPartition> ps) {
                            if (!ps.isEmpty() && !closing.get()) say("LOST " + i + " " + ps);
                        }
                    });
                    boolean named = false;
                    while (received.get() < expected && System.currentTimeMillis() < deadline) {
                        ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                        if (!named && !c.groupMetadata().memberId().isEmpty()) {
                            say("MEMBER " + i + " " + c.groupMetadata().memberId());
                            named = true;
                        }
                        rs.forEach(r -> say("RECORD " + i + " " + r.partition() + " " + r.offset()));
                        if (!rs.isEmpty()) {
                            received.addAndGet(rs.count());
                            try {
                                c.commitSync(Duration.ofSeconds(10));
                            } catch (Exception e) {
                                say("COMMIT-FAILED " + i + " " + e);
                            }
                        }
                    }
                    closing.set(true);
                    say("EPOCH " + i + " " + c.groupMetadata().memberId() + " " + c.groupMetadata().generationId());
                } catch (Exception e) {
                    say("ERROR " + i + " " + e);
                }
            });
            threads[m].start();
        }
        for (Thread t : threads) t.join();
        say("RECEIVED " + received.get());
        System.exit(received.get() == expected ? 0 : 1);
    }
}

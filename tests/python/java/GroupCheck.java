import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

public class GroupCheck {
    public static void main(String[] a) throws Exception {
        String bs = a[0], protocol = a[1];
        String topic = "jt-" + UUID.randomUUID().toString().substring(0, 8);
        String group = "jg-" + protocol + "-" + UUID.randomUUID().toString().substring(0, 8);
        Properties ap = new Properties();
        ap.put("bootstrap.servers", bs);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(topic, 6, (short) 1))).all().get();
            Properties pp = new Properties();
            pp.put("bootstrap.servers", bs);
            pp.put("key.serializer", StringSerializer.class.getName());
            pp.put("value.serializer", StringSerializer.class.getName());
            try (KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
                for (int i = 0; i < 60; i++) p.send(new ProducerRecord<>(topic, i % 6, null, "v" + i));
            }
            AtomicInteger total = new AtomicInteger();
            Set<String> seen = ConcurrentHashMap.newKeySet();
            List<Thread> ts = new ArrayList<>();
            List<Set<Integer>> assigned = new ArrayList<>();
            long t0 = System.currentTimeMillis();
            for (int c = 0; c < 3; c++) {
                Set<Integer> mine = ConcurrentHashMap.newKeySet();
                assigned.add(mine);
                Thread t = new Thread(() -> {
                    Properties cp = new Properties();
                    cp.put("bootstrap.servers", bs);
                    cp.put("group.id", group);
                    cp.put("group.protocol", protocol);
                    cp.put("auto.offset.reset", "earliest");
                    cp.put("enable.auto.commit", "false");
                    cp.put("key.deserializer", StringDeserializer.class.getName());
                    cp.put("value.deserializer", StringDeserializer.class.getName());
                    if (protocol.equals("classic")) { cp.put("session.timeout.ms", "6000"); cp.put("heartbeat.interval.ms", "500"); }
                    try (KafkaConsumer<String, String> k = new KafkaConsumer<>(cp)) {
                        k.subscribe(List.of(topic));
                        long end = System.currentTimeMillis() + 30000;
                        while (System.currentTimeMillis() < end) {
                            for (ConsumerRecord<String, String> r : k.poll(Duration.ofMillis(100))) {
                                if (seen.add(r.value())) total.incrementAndGet();
                            }
                            k.commitSync();
                            mine.clear();
                            for (TopicPartition tp : k.assignment()) mine.add(tp.partition());
                            int sum = 0; for (Set<Integer> s : assigned) sum += s.size();
                            boolean allHave = true; for (Set<Integer> s : assigned) allHave &= !s.isEmpty();
                            if (total.get() >= 60 && sum == 6 && allHave && assigned.size() == 3) break;
                        }
                        Thread.sleep(1500);
                        mine.clear();
                        for (TopicPartition tp : k.assignment()) mine.add(tp.partition());
                        System.out.println("consumer assignment " + new TreeSet<>(mine));
                        if (Thread.currentThread().getName().equals("c0")) {
                            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
                            System.out.println("describe state=" + d.groupState() + " type=" + d.type() + " members=" + d.members().size() + " assignor=" + d.partitionAssignor());
                        }
                    } catch (Exception e) { e.printStackTrace(); }
                }, "c" + c);
                ts.add(t); t.start();
            }
            for (Thread t : ts) t.join();
            System.out.println("consumed " + total.get() + " distinct in " + (System.currentTimeMillis() - t0) + " ms");
            Map<TopicPartition, OffsetAndMetadata> offs = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            long sum = 0; for (OffsetAndMetadata o : offs.values()) sum += o.offset();
            System.out.println("committed sum " + sum + " over " + offs.size() + " partitions");
            for (GroupListing g : admin.listGroups().all().get()) if (g.groupId().equals(group)) System.out.println("listed " + g);
            admin.deleteConsumerGroups(List.of(group)).all().get();
            System.out.println("deleted group");
        }
    }
}

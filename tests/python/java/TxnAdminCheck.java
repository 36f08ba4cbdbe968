import java.util.*;
import java.util.concurrent.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

/**
 * The Java AdminClient's transaction calls (listTransactions with every
 * filter, describeTransactions, describeProducers) against a transactional
 * producer through its life: initialised, ongoing, aborted, committed.
 * Prints one line per observation; crates/herald/tests/txn_admin.rs checks them.
 *
 * Usage: TxnAdminCheck BOOTSTRAP
 */
public class TxnAdminCheck {
    static Admin admin;

    static Optional<TransactionListing> listed(String id, ListTransactionsOptions o) throws Exception {
        return admin.listTransactions(o).all().get().stream()
            .filter(l -> l.transactionalId().equals(id)).findFirst();
    }

    static String state(String id) throws Exception {
        return listed(id, new ListTransactionsOptions()).map(l -> l.state().toString()).orElse("absent");
    }

    static String describe(String id) throws Exception {
        try {
            TransactionDescription d = admin.describeTransactions(List.of(id)).description(id).get();
            List<String> parts = new ArrayList<>();
            for (TopicPartition tp : d.topicPartitions()) parts.add(tp.toString());
            Collections.sort(parts);
            return "state=" + d.state() + " pid=" + d.producerId() + " epoch=" + d.producerEpoch()
                + " timeout=" + d.transactionTimeoutMs()
                + " start=" + (d.transactionStartTimeMs().isPresent() ? "present" : "none")
                + " coordinator=" + d.coordinatorId() + " partitions=" + parts;
        } catch (ExecutionException e) {
            return "error=" + e.getCause().getClass().getSimpleName();
        }
    }

    static String producers(TopicPartition tp) throws Exception {
        DescribeProducersResult.PartitionProducerState s =
            admin.describeProducers(List.of(tp)).partitionResult(tp).get();
        List<String> out = new ArrayList<>();
        for (ProducerState p : s.activeProducers()) {
            out.add("pid=" + p.producerId() + " epoch=" + p.producerEpoch()
                + " lastSequence=" + p.lastSequence()
                + " txnStart=" + (p.currentTransactionStartOffset().isPresent()
                    ? String.valueOf(p.currentTransactionStartOffset().getAsLong()) : "none"));
        }
        Collections.sort(out);
        return String.join(";", out);
    }

    static void send(KafkaProducer<String, String> p, String topic, int n) throws Exception {
        for (int i = 0; i < n; i++) p.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i)).get();
    }

    public static void main(String[] a) throws Exception {
        String bs = a[0];
        String suffix = UUID.randomUUID().toString().substring(0, 8);
        String topic = "jtxa-" + suffix;
        String id = "jtx-" + suffix;
        Properties ap = new Properties();
        ap.put("bootstrap.servers", bs);
        admin = Admin.create(ap);
        try {
            admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get();
            TopicPartition tp0 = new TopicPartition(topic, 0);
            System.out.println("describe unknown: " + describe("no-such-" + id));

            Properties pp = new Properties();
            pp.put("bootstrap.servers", bs);
            pp.put("transactional.id", id);
            pp.put("transaction.timeout.ms", "60000");
            pp.put("key.serializer", StringSerializer.class.getName());
            pp.put("value.serializer", StringSerializer.class.getName());
            try (KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
                p.initTransactions();
                System.out.println("list after init: " + state(id));
                System.out.println("describe after init: " + describe(id));

                p.beginTransaction();
                send(p, topic, 3);
                long pid = listed(id, new ListTransactionsOptions()).map(TransactionListing::producerId).orElse(-1L);
                System.out.println("list ongoing: " + state(id) + " pid=" + pid);
                System.out.println("describe ongoing: " + describe(id));
                System.out.println("producers ongoing: " + producers(tp0));

                boolean byOngoing = listed(id, new ListTransactionsOptions()
                    .filterStates(List.of(TransactionState.ONGOING))).isPresent();
                boolean byCommitted = listed(id, new ListTransactionsOptions()
                    .filterStates(List.of(TransactionState.COMPLETE_COMMIT))).isPresent();
                boolean byPid = listed(id, new ListTransactionsOptions()
                    .filterProducerIds(List.of(pid))).isPresent();
                boolean byOtherPid = listed(id, new ListTransactionsOptions()
                    .filterProducerIds(List.of(pid + 1_000_000))).isPresent();
                Thread.sleep(300);
                boolean shortDuration = listed(id, new ListTransactionsOptions()
                    .filterOnDuration(100)).isPresent();
                boolean longDuration = listed(id, new ListTransactionsOptions()
                    .filterStates(List.of(TransactionState.ONGOING)).filterOnDuration(3_600_000)).isPresent();
                boolean byPattern = listed(id, new ListTransactionsOptions()
                    .filterOnTransactionalIdPattern("jtx-[0-9a-f]{8}")).isPresent();
                boolean byPrefix = listed(id, new ListTransactionsOptions()
                    .filterOnTransactionalIdPattern("jtx")).isPresent();
                System.out.println("filters: ongoing=" + byOngoing + " completeCommit=" + byCommitted
                    + " pid=" + byPid + " otherPid=" + byOtherPid
                    + " duration100=" + shortDuration + " duration1h=" + longDuration
                    + " pattern=" + byPattern + " prefix=" + byPrefix);

                p.abortTransaction();
                System.out.println("list after abort: " + state(id));
                System.out.println("describe after abort: " + describe(id));
                System.out.println("producers after abort: " + producers(tp0));

                p.beginTransaction();
                send(p, topic, 2);
                p.commitTransaction();
                System.out.println("list after commit: " + state(id));
                System.out.println("describe after commit: " + describe(id));
            }
        } finally {
            admin.close();
        }
        System.out.println("done");
    }
}

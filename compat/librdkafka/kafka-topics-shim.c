/*
 * Minimal stand-in for Apache Kafka's bin/kafka-topics.sh, for librdkafka's
 * test suite (test_kafka_topics() runs "$KAFKA_PATH/bin/kafka-topics.sh
 * --bootstrap-server $BROKERS ...").  Implemented with librdkafka's Admin API so
 * the broker under test serves the request (CreateTopics with configs,
 * CreatePartitions, DeleteTopics).
 *
 * Supported forms (the ones the suite uses):
 *   --create --topic T [--partitions N] [--replication-factor R] [--config k=v]...
 *   --alter  --topic T --partitions N
 *   --delete --topic T
 *
 * Built by compat/librdkafka/build.sh; part of the Herald compatibility harness.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rdkafka.h" /* from librdkafka/src (-I) */

#define MAX_CONFIGS 32

static void usage(void) {
        fprintf(stderr,
                "usage: kafka-topics.sh --bootstrap-server B "
                "(--create|--alter|--delete) --topic T [--partitions N] "
                "[--replication-factor R] [--config k=v]...\n");
        exit(2);
}

int main(int argc, char **argv) {
        const char *bootstrap = NULL, *topic = NULL, *op = NULL;
        int partitions = -1, rf = -1, nconf = 0, i;
        char *configs[MAX_CONFIGS];
        char errstr[512];
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        rd_kafka_queue_t *q;
        rd_kafka_AdminOptions_t *opts;
        rd_kafka_event_t *ev;
        int exit_code = 0;

        for (i = 1; i < argc; i++) {
                const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), (char *)NULL))
                if (!strcmp(a, "--bootstrap-server"))
                        bootstrap = NEXT();
                else if (!strcmp(a, "--zookeeper")) {
                        fprintf(stderr, "kafka-topics shim: --zookeeper is not supported\n");
                        return 2;
                } else if (!strcmp(a, "--create") || !strcmp(a, "--alter") ||
                           !strcmp(a, "--delete"))
                        op = a + 2;
                else if (!strcmp(a, "--topic"))
                        topic = NEXT();
                else if (!strcmp(a, "--partitions"))
                        partitions = atoi(NEXT());
                else if (!strcmp(a, "--replication-factor"))
                        rf = atoi(NEXT());
                else if (!strcmp(a, "--config")) {
                        if (nconf == MAX_CONFIGS)
                                usage();
                        configs[nconf++] = NEXT();
                } else if (!strcmp(a, "--if-exists") ||
                           !strcmp(a, "--if-not-exists"))
                        ; /* ignored */
                else {
                        fprintf(stderr, "kafka-topics shim: unsupported argument %s\n", a);
                        return 2;
                }
        }
        if (!bootstrap || !topic || !op)
                usage();

        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "%s\n", errstr);
                return 1;
        }
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "rd_kafka_new: %s\n", errstr);
                return 1;
        }
        q    = rd_kafka_queue_new(rk);
        opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
        rd_kafka_AdminOptions_set_operation_timeout(opts, 30000, errstr,
                                                    sizeof(errstr));
        rd_kafka_AdminOptions_set_request_timeout(opts, 30000, errstr,
                                                  sizeof(errstr));

        if (!strcmp(op, "create")) {
                rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(
                    topic, partitions, rf, errstr, sizeof(errstr));
                if (!nt) {
                        fprintf(stderr, "NewTopic: %s\n", errstr);
                        return 1;
                }
                for (i = 0; i < nconf; i++) {
                        char *eq = strchr(configs[i], '=');
                        if (!eq)
                                usage();
                        *eq = '\0';
                        rd_kafka_NewTopic_set_config(nt, configs[i], eq + 1);
                }
                rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
                rd_kafka_NewTopic_destroy(nt);
        } else if (!strcmp(op, "alter")) {
                rd_kafka_NewPartitions_t *np;
                if (partitions < 1) {
                        fprintf(stderr, "kafka-topics shim: --alter needs --partitions\n");
                        return 2;
                }
                np = rd_kafka_NewPartitions_new(topic, (size_t)partitions,
                                                errstr, sizeof(errstr));
                rd_kafka_CreatePartitions(rk, &np, 1, opts, q);
                rd_kafka_NewPartitions_destroy(np);
        } else {
                rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
                rd_kafka_DeleteTopics(rk, &dt, 1, opts, q);
                rd_kafka_DeleteTopic_destroy(dt);
        }

        ev = rd_kafka_queue_poll(q, 60000);
        if (!ev) {
                fprintf(stderr, "kafka-topics shim: %s %s: timed out\n", op, topic);
                exit_code = 1;
        } else if (rd_kafka_event_error(ev)) {
                fprintf(stderr, "kafka-topics shim: %s %s: %s\n", op, topic,
                        rd_kafka_event_error_string(ev));
                exit_code = 1;
        } else {
                const rd_kafka_topic_result_t **res = NULL;
                size_t cnt = 0, j;
                switch (rd_kafka_event_type(ev)) {
                case RD_KAFKA_EVENT_CREATETOPICS_RESULT:
                        res = rd_kafka_CreateTopics_result_topics(
                            rd_kafka_event_CreateTopics_result(ev), &cnt);
                        break;
                case RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT:
                        res = rd_kafka_CreatePartitions_result_topics(
                            rd_kafka_event_CreatePartitions_result(ev), &cnt);
                        break;
                case RD_KAFKA_EVENT_DELETETOPICS_RESULT:
                        res = rd_kafka_DeleteTopics_result_topics(
                            rd_kafka_event_DeleteTopics_result(ev), &cnt);
                        break;
                default:
                        break;
                }
                for (j = 0; j < cnt; j++) {
                        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[j]);
                        if (err) {
                                fprintf(stderr, "kafka-topics shim: %s %s: %s: %s\n",
                                        op, rd_kafka_topic_result_name(res[j]),
                                        rd_kafka_err2name(err),
                                        rd_kafka_topic_result_error_string(res[j]));
                                exit_code = 1;
                        } else
                                printf("%s topic %s: ok\n", op,
                                       rd_kafka_topic_result_name(res[j]));
                }
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return exit_code;
}

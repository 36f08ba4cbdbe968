/*
 * Stand-in for Apache Kafka's bin/kafka-acls.sh (kafka.admin.AclCommand), for
 * librdkafka's test suite: 0109, 0115 and 0119 run
 *   "$KAFKA_PATH/bin/kafka-acls.sh --bootstrap-server $BROKERS --add
 *    --deny-principal 'User:*' --operation All --deny-host '*' --topic T"
 * (and --remove --force ...).  Implemented with librdkafka's Admin API, so the
 * broker under test serves exactly what Kafka's tool sends: CreateAcls with one
 * binding per principal x host x operation x resource, DeleteAcls with one
 * filter per binding (or, without principals, every ACL of the resource),
 * DescribeAcls for --list.
 *
 * Supported arguments (AclCommand's names and defaults):
 *   --bootstrap-server B  [--command-config FILE]
 *   --add | --remove | --list            [--force: accepted, never prompts]
 *   --allow-principal P... --deny-principal P...   (Type:name)
 *   --allow-host H...     --deny-host H...         (default '*')
 *   --operation OP...     (All, Read, Write, Create, Delete, Alter, Describe,
 *                          ClusterAction, DescribeConfigs, AlterConfigs,
 *                          IdempotentWrite; default All)
 *   --topic T... --group G... --transactional-id X... --cluster
 *   --resource-pattern-type literal|prefixed|match|any  (default literal;
 *                          match/any only with --list/--remove)
 *   --principal P (with --list: only that principal's ACLs)
 * --command-config takes `key=value` lines; librdkafka properties are applied,
 * `sasl.jaas.config`'s username/password become sasl.username/sasl.password,
 * Java-only keys (ssl.truststore.*, ...) are ignored with a warning.
 *
 * Built by compat/librdkafka/build.sh; part of the Herald compatibility harness.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rdkafka.h" /* from librdkafka/src (-I) */

#define MAXN 64

typedef struct {
        const char *v[MAXN];
        int n;
} list_t;

static void usage(const char *why) {
        fprintf(stderr, "kafka-acls shim: %s\n", why);
        fprintf(stderr,
                "usage: kafka-acls.sh --bootstrap-server B (--add|--remove|--list) "
                "[--allow-principal P] [--deny-principal P] [--allow-host H] "
                "[--deny-host H] [--operation OP] (--topic T|--group G|"
                "--transactional-id X|--cluster) [--resource-pattern-type T] "
                "[--force] [--command-config F]\n");
        exit(1);
}

static void push(list_t *l, const char *v) {
        if (l->n == MAXN)
                usage("too many values");
        l->v[l->n++] = v;
}

static int parse_op(const char *s) {
        static const struct {
                const char *name;
                rd_kafka_AclOperation_t op;
        } ops[] = {
            {"All", RD_KAFKA_ACL_OPERATION_ALL},
            {"Read", RD_KAFKA_ACL_OPERATION_READ},
            {"Write", RD_KAFKA_ACL_OPERATION_WRITE},
            {"Create", RD_KAFKA_ACL_OPERATION_CREATE},
            {"Delete", RD_KAFKA_ACL_OPERATION_DELETE},
            {"Alter", RD_KAFKA_ACL_OPERATION_ALTER},
            {"Describe", RD_KAFKA_ACL_OPERATION_DESCRIBE},
            {"ClusterAction", RD_KAFKA_ACL_OPERATION_CLUSTER_ACTION},
            {"DescribeConfigs", RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS},
            {"AlterConfigs", RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS},
            {"IdempotentWrite", RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE},
        };
        size_t i;
        for (i = 0; i < sizeof(ops) / sizeof(*ops); i++)
                if (!strcasecmp(s, ops[i].name))
                        return ops[i].op;
        fprintf(stderr, "kafka-acls shim: unknown operation %s\n", s);
        exit(1);
}

static int parse_pattern(const char *s) {
        if (!strcasecmp(s, "literal"))
                return RD_KAFKA_RESOURCE_PATTERN_LITERAL;
        if (!strcasecmp(s, "prefixed"))
                return RD_KAFKA_RESOURCE_PATTERN_PREFIXED;
        if (!strcasecmp(s, "match"))
                return RD_KAFKA_RESOURCE_PATTERN_MATCH;
        if (!strcasecmp(s, "any"))
                return RD_KAFKA_RESOURCE_PATTERN_ANY;
        fprintf(stderr, "kafka-acls shim: unknown resource pattern type %s\n", s);
        exit(1);
}

static char *trim(char *s) {
        char *e;
        while (isspace((unsigned char)*s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = '\0';
        return s;
}

/* `key="value"` inside a JAAS line. */
static int jaas_value(const char *jaas, const char *key, char *out, size_t outsz) {
        const char *p = jaas;
        size_t kl = strlen(key);
        while ((p = strstr(p, key))) {
                const char *q = p + kl;
                if ((p == jaas || isspace((unsigned char)p[-1])) && *q == '=' && q[1] == '"') {
                        const char *end = strchr(q + 2, '"');
                        size_t n;
                        if (!end)
                                return 0;
                        n = (size_t)(end - (q + 2));
                        if (n >= outsz)
                                n = outsz - 1;
                        memcpy(out, q + 2, n);
                        out[n] = '\0';
                        return 1;
                }
                p = q;
        }
        return 0;
}

static void apply_command_config(rd_kafka_conf_t *conf, const char *path) {
        char line[4096], errstr[512];
        FILE *f = fopen(path, "r");
        if (!f) {
                perror(path);
                exit(1);
        }
        while (fgets(line, sizeof(line), f)) {
                char *l = trim(line), *eq, *k, *v;
                if (!*l || *l == '#' || *l == '!')
                        continue;
                if (!(eq = strchr(l, '=')))
                        continue;
                *eq = '\0';
                k   = trim(l);
                v   = trim(eq + 1);
                if (!strcmp(k, "sasl.jaas.config")) {
                        char u[512], p[512];
                        if (jaas_value(v, "username", u, sizeof(u)))
                                rd_kafka_conf_set(conf, "sasl.username", u, errstr, sizeof(errstr));
                        if (jaas_value(v, "password", p, sizeof(p)))
                                rd_kafka_conf_set(conf, "sasl.password", p, errstr, sizeof(errstr));
                        continue;
                }
                if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
                        fprintf(stderr, "kafka-acls shim: ignoring %s from %s: %s\n", k, path, errstr);
        }
        fclose(f);
}

static void print_binding(const rd_kafka_AclBinding_t *b) {
        printf("\t(principal=%s, host=%s, operation=%s, permissionType=%s) on "
               "ResourcePattern(resourceType=%s, name=%s, patternType=%s)\n",
               rd_kafka_AclBinding_principal(b), rd_kafka_AclBinding_host(b),
               rd_kafka_AclOperation_name(rd_kafka_AclBinding_operation(b)),
               rd_kafka_AclPermissionType_name(rd_kafka_AclBinding_permission_type(b)),
               rd_kafka_ResourceType_name(rd_kafka_AclBinding_restype(b)),
               rd_kafka_AclBinding_name(b),
               rd_kafka_ResourcePatternType_name(rd_kafka_AclBinding_resource_pattern_type(b)));
}

int main(int argc, char **argv) {
        const char *bootstrap = NULL, *command_config = NULL, *action = NULL,
                   *list_principal = NULL;
        list_t allow_p = {{0}}, deny_p = {{0}}, allow_h = {{0}}, deny_h = {{0}}, ops = {{0}},
               topics = {{0}}, groups = {{0}}, txids = {{0}};
        int cluster = 0, pattern = -1, i, exit_code = 0;
        /* resources: (restype, name) */
        int res_type[3 * MAXN + 1];
        const char *res_name[3 * MAXN + 1];
        int nres = 0;
        rd_kafka_AclBinding_t *bindings[4 * MAXN * MAXN];
        int nb = 0;
        char errstr[512];
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        rd_kafka_queue_t *q;
        rd_kafka_AdminOptions_t *opts;
        rd_kafka_event_t *ev;

        for (i = 1; i < argc; i++) {
                const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage("missing value"), (char *)NULL))
                if (!strcmp(a, "--bootstrap-server"))
                        bootstrap = NEXT();
                else if (!strcmp(a, "--command-config"))
                        command_config = NEXT();
                else if (!strcmp(a, "--add") || !strcmp(a, "--remove") || !strcmp(a, "--list")) {
                        if (action)
                                usage("only one of --add, --remove, --list");
                        action = a + 2;
                } else if (!strcmp(a, "--force"))
                        ;
                else if (!strcmp(a, "--allow-principal"))
                        push(&allow_p, NEXT());
                else if (!strcmp(a, "--deny-principal"))
                        push(&deny_p, NEXT());
                else if (!strcmp(a, "--allow-host"))
                        push(&allow_h, NEXT());
                else if (!strcmp(a, "--deny-host"))
                        push(&deny_h, NEXT());
                else if (!strcmp(a, "--operation"))
                        push(&ops, NEXT());
                else if (!strcmp(a, "--topic"))
                        push(&topics, NEXT());
                else if (!strcmp(a, "--group"))
                        push(&groups, NEXT());
                else if (!strcmp(a, "--transactional-id"))
                        push(&txids, NEXT());
                else if (!strcmp(a, "--cluster"))
                        cluster = 1;
                else if (!strcmp(a, "--resource-pattern-type"))
                        pattern = parse_pattern(NEXT());
                else if (!strcmp(a, "--principal"))
                        list_principal = NEXT();
                else {
                        fprintf(stderr, "kafka-acls shim: unsupported argument %s\n", a);
                        return 1;
                }
        }
        if (!bootstrap)
                usage("--bootstrap-server is required");
        if (!action)
                usage("one of --add, --remove, --list is required");

        if (pattern == -1)
                pattern = RD_KAFKA_RESOURCE_PATTERN_LITERAL;
        if (!strcmp(action, "add") && pattern != RD_KAFKA_RESOURCE_PATTERN_LITERAL &&
            pattern != RD_KAFKA_RESOURCE_PATTERN_PREFIXED)
                usage("--add takes a literal or prefixed --resource-pattern-type");

        for (i = 0; i < topics.n; i++) {
                res_type[nres]   = RD_KAFKA_RESOURCE_TOPIC;
                res_name[nres++] = topics.v[i];
        }
        for (i = 0; i < groups.n; i++) {
                res_type[nres]   = RD_KAFKA_RESOURCE_GROUP;
                res_name[nres++] = groups.v[i];
        }
        for (i = 0; i < txids.n; i++) {
                res_type[nres]   = RD_KAFKA_RESOURCE_TRANSACTIONAL_ID;
                res_name[nres++] = txids.v[i];
        }
        if (cluster) {
                res_type[nres]   = RD_KAFKA_RESOURCE_BROKER; /* Kafka's CLUSTER (4) */
                res_name[nres++] = "kafka-cluster";
        }
        if (!nres && strcmp(action, "list"))
                usage("a resource (--topic, --group, --transactional-id, --cluster) is required");
        if (!strcmp(action, "add") && !allow_p.n && !deny_p.n)
                usage("--add needs --allow-principal or --deny-principal");
        if (!ops.n)
                push(&ops, "All");
        if (allow_p.n && !allow_h.n)
                push(&allow_h, "*");
        if (deny_p.n && !deny_h.n)
                push(&deny_h, "*");

        /* Bindings (add) or filters (remove, list). */
        if (!strcmp(action, "list")) {
                int r;
                int n = nres ? nres : 1;
                for (r = 0; r < n; r++) {
                        bindings[nb] = rd_kafka_AclBindingFilter_new(
                            nres ? res_type[r] : RD_KAFKA_RESOURCE_ANY,
                            nres ? res_name[r] : NULL,
                            nres ? pattern : RD_KAFKA_RESOURCE_PATTERN_ANY, list_principal,
                            NULL, RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
                            errstr, sizeof(errstr));
                        if (!bindings[nb]) {
                                fprintf(stderr, "kafka-acls shim: %s\n", errstr);
                                return 1;
                        }
                        nb++;
                }
        } else {
                int r, side;
                int is_add = !strcmp(action, "add");
                for (r = 0; r < nres; r++) {
                        if (!is_add && !allow_p.n && !deny_p.n) {
                                /* --remove without principals: every ACL of the resource. */
                                bindings[nb] = rd_kafka_AclBindingFilter_new(
                                    res_type[r], res_name[r], pattern, NULL, NULL,
                                    RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
                                    errstr, sizeof(errstr));
                                if (!bindings[nb]) {
                                        fprintf(stderr, "kafka-acls shim: %s\n", errstr);
                                        return 1;
                                }
                                nb++;
                                continue;
                        }
                        for (side = 0; side < 2; side++) {
                                list_t *pl = side ? &deny_p : &allow_p;
                                list_t *hl = side ? &deny_h : &allow_h;
                                int perm = side ? RD_KAFKA_ACL_PERMISSION_TYPE_DENY
                                                : RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW;
                                int pi, hi, oi;
                                for (pi = 0; pi < pl->n; pi++)
                                        for (hi = 0; hi < hl->n; hi++)
                                                for (oi = 0; oi < ops.n; oi++) {
                                                        if (nb == (int)(sizeof(bindings) / sizeof(*bindings)))
                                                                usage("too many bindings");
                                                        if (!strchr(pl->v[pi], ':')) {
                                                                fprintf(stderr,
                                                                        "kafka-acls shim: principal %s is not Type:name\n",
                                                                        pl->v[pi]);
                                                                return 1;
                                                        }
                                                        bindings[nb] =
                                                            (is_add ? rd_kafka_AclBinding_new
                                                                    : rd_kafka_AclBindingFilter_new)(
                                                                res_type[r], res_name[r], pattern,
                                                                pl->v[pi], hl->v[hi],
                                                                parse_op(ops.v[oi]), perm, errstr,
                                                                sizeof(errstr));
                                                        if (!bindings[nb]) {
                                                                fprintf(stderr, "kafka-acls shim: %s\n",
                                                                        errstr);
                                                                return 1;
                                                        }
                                                        nb++;
                                                }
                        }
                }
        }

        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
                fprintf(stderr, "%s\n", errstr);
                return 1;
        }
        if (command_config)
                apply_command_config(conf, command_config);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "rd_kafka_new: %s\n", errstr);
                return 1;
        }
        q    = rd_kafka_queue_new(rk);
        opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
        rd_kafka_AdminOptions_set_request_timeout(opts, 30000, errstr, sizeof(errstr));

        if (!strcmp(action, "add")) {
                printf("Adding ACLs:\n");
                for (i = 0; i < nb; i++)
                        print_binding(bindings[i]);
                rd_kafka_CreateAcls(rk, bindings, (size_t)nb, opts, q);
        } else if (!strcmp(action, "remove")) {
                rd_kafka_DeleteAcls(rk, bindings, (size_t)nb, opts, q);
        } else {
                /* DescribeAcls takes one filter per call. */
                for (i = 0; i < nb; i++) {
                        const rd_kafka_AclBinding_t **acls;
                        size_t cnt, j;
                        rd_kafka_DescribeAcls(rk, bindings[i], opts, q);
                        ev = rd_kafka_queue_poll(q, 60000);
                        if (!ev || rd_kafka_event_error(ev)) {
                                fprintf(stderr, "kafka-acls shim: list: %s\n",
                                        ev ? rd_kafka_event_error_string(ev) : "timed out");
                                exit_code = 1;
                        } else {
                                acls = rd_kafka_DescribeAcls_result_acls(
                                    rd_kafka_event_DescribeAcls_result(ev), &cnt);
                                printf("Current ACLs (%d):\n", (int)cnt);
                                for (j = 0; j < cnt; j++)
                                        print_binding(acls[j]);
                        }
                        if (ev)
                                rd_kafka_event_destroy(ev);
                }
                goto done;
        }

        ev = rd_kafka_queue_poll(q, 60000);
        if (!ev) {
                fprintf(stderr, "kafka-acls shim: %s: timed out\n", action);
                exit_code = 1;
        } else if (rd_kafka_event_error(ev)) {
                fprintf(stderr, "kafka-acls shim: %s: %s\n", action, rd_kafka_event_error_string(ev));
                exit_code = 1;
        } else if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_CREATEACLS_RESULT) {
                size_t cnt, j;
                const rd_kafka_acl_result_t **res =
                    rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &cnt);
                for (j = 0; j < cnt; j++) {
                        const rd_kafka_error_t *err = rd_kafka_acl_result_error(res[j]);
                        if (err) {
                                fprintf(stderr, "kafka-acls shim: add: %s: %s\n",
                                        rd_kafka_error_name(err), rd_kafka_error_string(err));
                                exit_code = 1;
                        }
                }
        } else if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DELETEACLS_RESULT) {
                size_t cnt, j, k, m;
                const rd_kafka_DeleteAcls_result_response_t **res =
                    rd_kafka_DeleteAcls_result_responses(rd_kafka_event_DeleteAcls_result(ev), &cnt);
                for (j = 0; j < cnt; j++) {
                        const rd_kafka_error_t *err = rd_kafka_DeleteAcls_result_response_error(res[j]);
                        const rd_kafka_AclBinding_t **acls;
                        if (err) {
                                fprintf(stderr, "kafka-acls shim: remove: %s: %s\n",
                                        rd_kafka_error_name(err), rd_kafka_error_string(err));
                                exit_code = 1;
                                continue;
                        }
                        acls = rd_kafka_DeleteAcls_result_response_matching_acls(res[j], &m);
                        printf("Removed %d ACL(s):\n", (int)m);
                        for (k = 0; k < m; k++)
                                print_binding(acls[k]);
                }
        }
        if (ev)
                rd_kafka_event_destroy(ev);
done:
        for (i = 0; i < nb; i++)
                rd_kafka_AclBinding_destroy(bindings[i]);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return exit_code;
}

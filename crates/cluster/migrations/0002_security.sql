-- Herald cluster schema, version 2: listeners per broker, SCRAM users, ACLs.

-- Each broker's endpoint on each listener ([{"listener","host","port"}]):
-- Metadata answers a client with the endpoints of the listener it came in on.
ALTER TABLE brokers ADD COLUMN listeners jsonb NOT NULL DEFAULT '[]';

-- The secret from which every broker derives the same fake SCRAM salt for an
-- unknown user (so an unknown user looks alike on every broker). Set once,
-- by the first broker that needs it.
ALTER TABLE cluster ADD COLUMN scram_secret bytea;

-- SCRAM credentials as Kafka stores them: never the password.
CREATE TABLE scram_credentials (
    username    text NOT NULL,
    mechanism   text NOT NULL,          -- SCRAM-SHA-256 | SCRAM-SHA-512
    salt        bytea NOT NULL,
    iterations  int NOT NULL,
    stored_key  bytea NOT NULL,
    server_key  bytea NOT NULL,
    PRIMARY KEY (username, mechanism)
);

-- ACL bindings; the whole binding is the key (creating one twice is a no-op).
CREATE TABLE acls (
    resource_type  text NOT NULL,
    resource_name  text NOT NULL,
    pattern_type   text NOT NULL,
    principal      text NOT NULL,
    host           text NOT NULL,
    operation      text NOT NULL,
    permission     text NOT NULL,
    PRIMARY KEY (resource_type, resource_name, pattern_type, principal, host, operation, permission)
);

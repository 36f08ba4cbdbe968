// Scenario suite for kafkajs 2.2.4 (pure JS; speaks only old protocol versions).
//
// Codecs: gzip is built in; snappy from kafkajs-snappy (pure JS), lz4 from
// kafkajs-lz4 (the `lz4` native addon, built by npm), zstd through a small codec
// over zstd-codec (Emscripten) because @kafkajs/zstd's native addon no longer
// builds on current Node.
//
// kafkajs's consumer always joins a group, so the consume scenarios need the
// group coordinator. Produced data is read back without a group through
// kafkajs's own Broker.fetch (the same Fetch decoder and codecs the consumer
// uses), so produce, compression and idempotence are tested regardless.
//
// Output: JSON in $RESULT_FILE, the same shape as compat/clients/py/harness.py.

'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const fs = require('fs')
const crypto = require('crypto')
const {
  Kafka, logLevel, CompressionTypes, CompressionCodecs, ConfigResourceTypes,
} = require('kafkajs')

CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec

const zstdSimple = new Promise(resolve => {
  require('zstd-codec').ZstdCodec.run(z => resolve(new z.Simple()))
})
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress (encoder) {
    return Buffer.from((await zstdSimple).compress(encoder.buffer, 3))
  },
  async decompress (buffer) {
    const out = (await zstdSimple).decompress(buffer)
    if (out == null) throw new Error('zstd-codec failed to decompress')
    return Buffer.from(out)
  },
})

// host:port, or a comma-separated list of them (a cluster's brokers)
const BOOTSTRAP = process.env.HERALD_BOOTSTRAP
const OUT = process.env.RESULT_FILE
const runId = crypto.randomBytes(3).toString('hex')
const version = require('kafkajs/package.json').version
const data = { client: 'kafkajs', version, details: 'Node ' + process.version, scenarios: {} }

const logs = []
const logCreator = () => ({ namespace, level, label, log }) => {
  const line = `${label} [${namespace}] ${log.message}${log.error ? ': ' + log.error : ''}`
  logs.push({ level, line })
  process.stderr.write(line + '\n')
}
// Security mode (run.py --security): HERALD_SECURITY is sasl_ssl or mtls; the settings of
// User:client are in HERALD_SSL_CA, HERALD_SSL_CERT/KEY (mtls) and
// HERALD_SASL_MECHANISM/USERNAME/PASSWORD (sasl_ssl); HERALD_LIMITED_* are User:limited's.
const SECURITY = process.env.HERALD_SECURITY || null
function security (limited = false) {
  if (!SECURITY) return {}
  const env = name => process.env[(limited ? 'HERALD_LIMITED_' : 'HERALD_') + name]
  const ssl = { ca: [fs.readFileSync(process.env.HERALD_SSL_CA)] }
  if (SECURITY === 'mtls') {
    ssl.cert = fs.readFileSync(env('SSL_CERT'))
    ssl.key = fs.readFileSync(env('SSL_KEY'))
    return { ssl }
  }
  const mechanism = (process.env.HERALD_SASL_MECHANISM || 'SCRAM-SHA-512').toLowerCase()
  return { ssl, sasl: { mechanism, username: env('SASL_USERNAME'), password: env('SASL_PASSWORD') } }
}

const newKafka = (limited = false) => new Kafka({
  clientId: 'compat-kafkajs',
  brokers: BOOTSTRAP.split(',').map(b => b.trim()).filter(b => b),
  logLevel: logLevel.WARN,
  logCreator,
  retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2000 },
  requestTimeout: 10000,
  ...security(limited),
})
const kafka = newKafka()

class Check extends Error {}
const expect = (cond, msg) => { if (!cond) throw new Check(msg) }
const topicName = s => `${s.replace(/_/g, '-')}-${runId}`
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const lastError = () => {
  const e = logs.filter(l => l.level <= logLevel.WARN).pop()
  return e ? `; last client log: ${e.line.slice(0, 200)}` : ''
}

function save () {
  if (!OUT) return
  fs.writeFileSync(OUT + '.tmp', JSON.stringify(data, null, 1))
  fs.renameSync(OUT + '.tmp', OUT)
}

let needs = null
let verify = null
let stage = null // what a scenario completed, prefixed to a later failure
const cleanups = []

async function run (name, fn, timeoutMs = 30000) {
  needs = null; verify = null; stage = null
  const t0 = Date.now()
  let res
  let timer
  try {
    const note = await Promise.race([
      fn(),
      new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`scenario timed out after ${timeoutMs / 1000}s`)), timeoutMs)
      }),
    ])
    res = { status: 'pass', reason: note || '' }
  } catch (e) {
    let reason = e instanceof Check ? e.message : `${e.name}: ${e.message}`
    if (stage) reason = `${stage} passed; then ${reason}`
    res = { status: 'fail', reason: reason.split('\n')[0].slice(0, 400) }
    if (needs) res.needs = needs
    process.stderr.write(`${e.stack}\n`)
  } finally {
    clearTimeout(timer)
  }
  // Whatever a scenario left connected (a consumer stuck joining a group) is closed now.
  while (cleanups.length) {
    try { await Promise.race([cleanups.pop()(), sleep(3000)]) } catch (_) {}
  }
  res.seconds = (Date.now() - t0) / 1000
  if (verify && res.status === 'pass') res.verify = verify
  data.scenarios[name] = res
  process.stderr.write(`[kafkajs] ${name}: ${res.status} ${res.reason}\n`)
  save()
}

function na (name, reason) {
  data.scenarios[name] = { status: 'n/a', reason }
  save()
}

function records (n, start = 0, size = 0) {
  const out = []
  for (let i = start; i < start + n; i++) {
    let v = `v${i}`
    if (size) v = (v + '-' + 'herald-compat '.repeat(Math.ceil(size / 14) + 1)).slice(0, size)
    out.push({ key: `k${i}`, value: v, headers: { 'h-index': String(i), 'h-kind': 'compat' }, partition: 0 })
  }
  return out
}

function checkRecords (got, want, what = 'records') {
  expect(got.length === want.length, `${what}: got ${got.length} records, want ${want.length}`)
  got.forEach((m, i) => {
    const w = want[i]
    const key = m.key ? m.key.toString() : null
    const value = m.value ? m.value.toString() : null
    expect(key === w.key, `${what}[${i}]: key ${key} != ${w.key}`)
    expect(value === w.value, `${what}[${i}]: value ${String(value).slice(0, 30)} != ${String(w.value).slice(0, 30)}`)
    const h = {}
    for (const [k, v] of Object.entries(m.headers || {})) h[k] = v == null ? v : v.toString()
    expect(JSON.stringify(h) === JSON.stringify(w.headers),
      `${what}[${i}]: headers ${JSON.stringify(h)} != ${JSON.stringify(w.headers)}`)
  })
}

async function produce (topic, msgs, opts = {}, producerOpts = {}, client = kafka) {
  const p = client.producer({ allowAutoTopicCreation: true, ...producerOpts })
  await p.connect()
  try {
    return await p.send({ topic, messages: msgs, acks: -1, ...opts })
  } finally {
    await p.disconnect()
  }
}

// Group-less read of partition 0 through kafkajs's Broker.fetch.
async function fetchAll (topic, n, timeoutMs = 15000) {
  const sym = Object.getOwnPropertySymbols(kafka).find(s => String(s).includes('createCluster'))
  const cluster = kafka[sym]({ allowAutoTopicCreation: false })
  await cluster.connect()
  try {
    await cluster.addTargetTopic(topic)
    const leaders = cluster.findLeaderForPartitions(topic, [0])
    const broker = await cluster.findBroker({ nodeId: Object.keys(leaders)[0] })
    const got = []
    let offset = 0
    const deadline = Date.now() + timeoutMs
    while (got.length < n && Date.now() < deadline) {
      const resp = await broker.fetch({
        replicaId: -1, isolationLevel: 1, maxWaitTime: 500, minBytes: 1, maxBytes: 8 << 20,
        topics: [{ topic, partitions: [{ partition: 0, fetchOffset: String(offset), maxBytes: 8 << 20 }] }],
      })
      const p = resp.responses[0].partitions[0]
      expect(p.errorCode === 0, `Fetch error code ${p.errorCode}`)
      for (const m of p.messages) {
        if (Number(m.offset) >= offset) { got.push(m); offset = Number(m.offset) + 1 }
      }
    }
    return got
  } finally {
    await cluster.disconnect()
  }
}

async function adminClient () {
  const a = kafka.admin()
  await a.connect()
  return a
}

async function adminTopics () {
  const a = await adminClient()
  const t = topicName('admin')
  try {
    const created = await a.createTopics({
      topics: [{ topic: t, numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
      waitForLeaders: true,
    })
    expect(created === true, `createTopics returned ${created}`)
    expect((await a.listTopics()).includes(t), `created topic ${t} missing from listTopics`)
    const md = await a.fetchTopicMetadata({ topics: [t] })
    expect(md.topics[0].partitions.length === 3, `fetchTopicMetadata: ${md.topics[0].partitions.length} partitions, want 3`)
    // kafkajs answers false (not an error) when the topic exists already.
    const again = await a.createTopics({ topics: [{ topic: t, numPartitions: 1 }] })
    expect(again === false, `creating an existing topic returned ${again}, want false (TOPIC_ALREADY_EXISTS)`)
    await a.deleteTopics({ topics: [t], timeout: 10000 })
    let unknownErr = null
    try {
      await a.deleteTopics({ topics: [t + '-unknown'], timeout: 10000 })
    } catch (e) {
      unknownErr = e
    }
    expect(unknownErr && /UNKNOWN_TOPIC_OR_PARTITION|does not host this topic-partition/.test(String(unknownErr.type || '') + unknownErr.message),
      `deleting an unknown topic: ${unknownErr}, want UNKNOWN_TOPIC_OR_PARTITION`)
    const deadline = Date.now() + 10000
    while (Date.now() < deadline) {
      if (!(await a.listTopics()).includes(t)) return 'createTopics 3 partitions, fetchTopicMetadata, deleteTopics; errors for a duplicate create and an unknown delete'
      await sleep(300)
    }
    throw new Check(`deleted topic ${t} still listed after 10s`)
  } finally {
    await a.disconnect()
  }
}

async function describeConfigs () {
  const a = await adminClient()
  const t = topicName('configs')
  try {
    await a.createTopics({ topics: [{ topic: t, numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '7200000' }] }] })
    const r = await a.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: t }], includeSynonyms: false })
    const res = r.resources[0]
    expect(res.errorCode === 0, `DescribeConfigs error ${res.errorCode} ${res.errorMessage}`)
    const entries = {}
    for (const e of res.configEntries) entries[e.configName] = e.configValue
    expect(Object.keys(entries).length > 0, 'DescribeConfigs returned no entries')
    for (const key of ['retention.ms', 'cleanup.policy', 'segment.bytes']) {
      expect(key in entries, `DescribeConfigs lacks ${key}; got ${Object.keys(entries).slice(0, 10)}`)
    }
    expect(entries['retention.ms'] === '7200000', `retention.ms = ${entries['retention.ms']}, want 7200000 (set at creation)`)
    return `${Object.keys(entries).length} entries`
  } finally {
    await a.disconnect()
  }
}

// A record without a key and a tombstone (null value).
const NULLS = [
  { key: null, value: 'v-no-key', headers: {}, partition: 0 },
  { key: 'k-tombstone', value: null, headers: {}, partition: 0 },
]

async function produceKeysHeaders () {
  const t = topicName('produce')
  const want = records(10).concat(NULLS)
  const md = await produce(t, want)
  expect(md[0].errorCode === 0 && md[0].baseOffset === '0', `produce response ${JSON.stringify(md)}`)
  checkRecords(await fetchAll(t, 12), want)
  return '10 keyed records with headers, a null key, a tombstone'
}

function compression (codec, type) {
  return async () => {
    const t = topicName(`comp-${codec}`)
    const want = records(200, 0, 300)
    await produce(t, want, { compression: type })
    checkRecords(await fetchAll(t, 200), want)
    verify = { topic: t, codec }
  }
}

// A group consumer (kafkajs has no other) that collects `n` records. Fails as
// soon as the consumer crashes (kafkajs gives up on a missing coordinator).
async function consumeGroup (topic, n, { groupId, fromBeginning = true, seekTo = null, timeoutMs = 15000, readUncommitted = false } = {}) {
  const c = kafka.consumer({ groupId: groupId || `grp-${topic}`, sessionTimeout: 6000, heartbeatInterval: 1000, retry: { retries: 2 }, readUncommitted })
  cleanups.push(() => c.disconnect())
  const got = []
  let crash = null
  let joined, done
  const joinedP = new Promise(resolve => { joined = resolve })
  const finished = new Promise(resolve => { done = resolve })
  c.on(c.events.GROUP_JOIN, () => joined(true))
  c.on(c.events.CRASH, ({ payload }) => { crash = payload.error; joined(false); done() })
  needs = needs || 'group-coordinator'
  await c.connect()
  await c.subscribe({ topic, fromBeginning })
  await c.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      if (got.length < n) got.push(Object.assign(message, { partition }))
      if (got.length >= n) done()
    },
  })
  const ok = await Promise.race([joinedP, sleep(timeoutMs).then(() => false)])
  if (crash) throw new Check(`consumer crashed: ${crash.name}: ${crash.message}`)
  expect(ok, `consumer did not join group ${groupId} in ${timeoutMs / 1000}s${lastError()}`)
  if (seekTo != null) c.seek({ topic, partition: 0, offset: String(seekTo) })
  await Promise.race([finished, sleep(timeoutMs)])
  if (crash) throw new Check(`consumer crashed: ${crash.name}: ${crash.message}`)
  expect(got.length >= n, `group consumer got ${got.length}/${n} records in ${timeoutMs / 1000}s${lastError()}`)
  return { consumer: c, got }
}

async function consumeBeginning () {
  const t = topicName('beginning')
  const want = records(25)
  await produce(t, want.slice(0, 10))
  await produce(t, want.slice(10))
  const { consumer, got } = await consumeGroup(t, 25)
  await consumer.disconnect()
  checkRecords(got, want)
  expect(got.map(m => Number(m.offset)).join() === [...Array(25).keys()].join(), 'offsets not 0..24')
  return 'consumer.subscribe fromBeginning (kafkajs consumers always join a group)'
}

async function consumeTimestamp () {
  const t = topicName('timestamp')
  const t0 = (Math.floor(Date.now() / 1000) - 3600) * 1000
  const want = records(10).map((m, i) => ({ ...m, timestamp: String(t0 + i * 1000) }))
  await produce(t, want)
  const a = await adminClient()
  try {
    for (const [q, wantOffset] of [[t0 + 5000, '5'], [t0 + 4500, '5'], [t0 - 10000, '0'], [t0 + 100000, '10']]) {
      const r = await a.fetchTopicOffsetsByTimestamp(t, q)
      expect(r[0].offset === wantOffset, `fetchTopicOffsetsByTimestamp(t0${q - t0 >= 0 ? '+' : ''}${q - t0}ms) = ${r[0].offset}, want ${wantOffset}`)
    }
  } finally {
    await a.disconnect()
  }
  stage = 'fetchTopicOffsetsByTimestamp (ListOffsets) inside one batch'
  const { consumer, got } = await consumeGroup(t, 5, { seekTo: 5 })
  await consumer.disconnect()
  expect(got[0].offset === '5' && got[0].value.toString() === 'v5', `first record at offset ${got[0].offset}, want 5`)
  expect(got[0].timestamp === String(t0 + 5000), `timestamp ${got[0].timestamp} != t0+5000`)
  return 'fetchTopicOffsetsByTimestamp inside one batch (no group), then a group consumer seeks there'
}

async function idempotentProduce () {
  const t = topicName('idempotent')
  const want = records(50)
  await produce(t, want, {}, { idempotent: true, maxInFlightRequests: 1 })
  checkRecords(await fetchAll(t, 50), want)
  verify = { topic: t, idempotent: true }
}

async function groupCommitResume () {
  const t = topicName('group')
  const groupId = `grp-${runId}`
  await produce(t, records(10))
  const first = await consumeGroup(t, 5, { groupId })
  await first.consumer.commitOffsets([{ topic: t, partition: 0, offset: '5' }])
  await first.consumer.disconnect()
  const second = await consumeGroup(t, 1, { groupId })
  expect(second.got[0].offset === '5', `resumed at offset ${second.got[0].offset}, want 5 (committed)`)
  await second.consumer.disconnect()
  const a = await adminClient()
  try {
    const offs = await a.fetchOffsets({ groupId, topics: [t] })
    const committed = offs[0].partitions[0].offset
    expect(committed === '5', `fetchOffsets: committed ${committed}, want 5`)
  } finally {
    await a.disconnect()
  }
}

// The transactions scenario, as in compat/clients/py/harness.py (TXN_PLAN): one
// transactional producer, each transaction across every partition of the topic,
// the aborted one's records acknowledged before the abort; a read_committed
// consumer (kafkajs's default, readUncommitted: false) must read exactly the
// committed records, a read_uncommitted one all of them.
const TXN_PARTITIONS = 2
const TXN_PLAN = [['commit', 4], ['abort', 3], ['commit', 2]]
const txnValues = (txn, partition) => [...Array(TXN_PLAN[txn][1]).keys()].map(i => `t${txn}-${TXN_PLAN[txn][0]}-p${partition}-${i}`)
function txnExpected (committedOnly) {
  const out = {}
  for (let p = 0; p < TXN_PARTITIONS; p++) {
    out[p] = TXN_PLAN.flatMap(([outcome], t) => (outcome === 'commit' || !committedOnly) ? txnValues(t, p) : [])
  }
  return out
}
const txnCount = committedOnly => Object.values(txnExpected(committedOnly)).reduce((n, v) => n + v.length, 0)

async function readTxn (topic, readUncommitted) {
  const n = txnCount(!readUncommitted)
  const { consumer, got } = await consumeGroup(topic, n, { groupId: `grp-${topic}-${readUncommitted ? 'ru' : 'rc'}`, readUncommitted })
  await consumer.disconnect()
  const out = {}
  for (const m of got) (out[m.partition] = out[m.partition] || []).push(m.value ? m.value.toString() : null)
  return out
}

function checkTxnRead (got, committedOnly) {
  const what = committedOnly ? 'read_committed' : 'read_uncommitted'
  const want = txnExpected(committedOnly)
  for (let p = 0; p < TXN_PARTITIONS; p++) {
    const g = got[p] || []
    expect(JSON.stringify(g) === JSON.stringify(want[p]), `${what} consumer, partition ${p}: got ${JSON.stringify(g)}, want ${JSON.stringify(want[p])}`)
  }
  const extra = Object.keys(got).filter(p => Number(p) >= TXN_PARTITIONS)
  expect(extra.length === 0, `${what} consumer read partitions ${extra}`)
}

async function transactions () {
  const t = topicName('txn')
  const a = await adminClient()
  try {
    await a.createTopics({ topics: [{ topic: t, numPartitions: TXN_PARTITIONS }], waitForLeaders: true })
  } finally {
    await a.disconnect()
  }
  needs = 'transactions'
  const p = kafka.producer({ transactionalId: `compat-kafkajs-${runId}`, idempotent: true, maxInFlightRequests: 1 })
  cleanups.push(() => p.disconnect())
  await p.connect()
  let acked = 0
  for (const [n, [outcome]] of TXN_PLAN.entries()) {
    const txn = await p.transaction()
    for (let part = 0; part < TXN_PARTITIONS; part++) {
      const md = await txn.send({ topic: t, acks: -1, messages: txnValues(n, part).map(value => ({ value, partition: part })) })
      expect(md.every(r => r.errorCode === 0), `transactional produce: ${JSON.stringify(md)}`)
      acked += txnValues(n, part).length
    }
    // txn.send resolved once the broker acknowledged: the aborted records are in the log.
    if (outcome === 'abort') await txn.abort()
    else await txn.commit()
  }
  await p.disconnect()
  expect(acked === txnCount(false), `${acked} acknowledged records, want ${txnCount(false)}`)
  checkTxnRead(await readTxn(t, false), true)
  checkTxnRead(await readTxn(t, true), false)
  verify = { topic: t, transactions: { partitions: TXN_PARTITIONS, markers: TXN_PLAN.map(([o]) => o), records: TXN_PLAN.map(([, n]) => n) } }
  return `${TXN_PLAN.length} transactions across ${TXN_PARTITIONS} partitions (${TXN_PLAN.map(([o, n]) => `${o} ${n}`).join(', ')} records per partition, the aborted ones acknowledged before the abort); read_committed reads exactly the committed ones, read_uncommitted all (group consumers)`
}

// As User:limited (not a super user; WRITE and CREATE on the topics prefixed acl-ok-).
async function aclDenied () {
  const limited = newKafka(true)
  const ok = topicName('acl_ok')
  const no = topicName('acl_no')
  const md = await produce(ok, records(3), {}, {}, limited)
  expect(md[0].errorCode === 0 && md[0].baseOffset === '0', `allowed produce as User:limited: ${JSON.stringify(md)}`)
  let err = null
  try {
    await produce(no, records(1), {}, { retry: { retries: 1 } }, limited)
  } catch (e) {
    err = e
  }
  expect(err, `produce to ${no} as User:limited succeeded, want TOPIC_AUTHORIZATION_FAILED`)
  expect(/TOPIC_AUTHORIZATION_FAILED|authorization/i.test(String(err.type || '') + ' ' + err.message),
    `produce to ${no}: ${err.name}: ${err.message}, want TOPIC_AUTHORIZATION_FAILED`)
  return `as User:limited: produce to acl-ok-* allowed; elsewhere ${err.name} ${err.type || err.message}`
}

async function main () {
  await run('admin_topics', adminTopics)
  await run('describe_configs', describeConfigs)
  await run('produce_keys_headers', produceKeysHeaders)
  await run('compression_gzip', compression('gzip', CompressionTypes.GZIP))
  await run('compression_snappy', compression('snappy', CompressionTypes.Snappy))
  await run('compression_lz4', compression('lz4', CompressionTypes.LZ4))
  await run('compression_zstd', compression('zstd', CompressionTypes.ZSTD))
  await run('consume_beginning', consumeBeginning, 30000)
  await run('consume_timestamp', consumeTimestamp, 30000)
  await run('idempotent_produce', idempotentProduce)
  await run('group_commit_resume', groupCommitResume, 40000)
  na('group_consumer_protocol', 'kafkajs has no KIP-848 consumer')
  await run('transactions', transactions, 60000)
  if (SECURITY) await run('acl_denied', aclDenied)
}

main().then(() => process.exit(0), e => { process.stderr.write(`${e.stack}\n`); process.exit(1) })

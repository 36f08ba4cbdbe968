// Browser tests of the Herald Console: playwright-core driving Debian's
// chromium (never `playwright install`) against a real broker that
// crates/herald/tests/console_browser.rs started and filled with real clients.
//
// Environment (set by the Rust test):
//   BASE_URL        the console, http://127.0.0.1:PORT
//   BOOTSTRAP       the broker's Kafka listener, 127.0.0.1:PORT
//   HERALD_BIN      the herald binary (for `herald group describe`)
//   SCREENSHOT_DIR  where each page's screenshot goes (docs/console)
//   TOPIC           a topic with 20 JSON records keyed order-0..order-19 (header eventType)
//   GROUP           a group with no members and committed offsets on TOPIC
//   SHOP            "1" when the shop example ran just before (event flow, dead letters)
//   CHROMIUM        the browser (default /usr/bin/chromium), KCAT (default kcat)
//
// Every scenario asserts what the issue asks; a failure exits non-zero with
// the scenario's name, and the Rust test fails with it.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const run = promisify(execFile);
const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`environment variable ${k} is required`);
  return v;
};
const BASE = env('BASE_URL').replace(/\/$/, '');
const BOOTSTRAP = env('BOOTSTRAP', '');
const HERALD = env('HERALD_BIN');
const SHOTS = env('SCREENSHOT_DIR');
const TOPIC = env('TOPIC', 'orders');
const GROUP = env('GROUP', 'billing');
const SHOP = env('SHOP', '0') === '1';
const KCAT = env('KCAT', 'kcat');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
// Failure screenshots stay out of the docs folder.
const FAILURES = process.env.FAILURE_DIR || tmpdir();
const ONLY = process.env.ONLY ? process.env.ONLY.split(',') : null;

mkdirSync(SHOTS, { recursive: true });

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

async function until(what, fn, timeoutMs = 10000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function kcat(args, input) {
  return new Promise((resolve, reject) => {
    const p = spawn(KCAT, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`kcat ${args.join(' ')} exited ${code}: ${err}`))));
    p.stdin.end(input ?? '');
  });
}

async function groupDescribe(group) {
  const { stdout } = await run(HERALD, ['group', 'describe', group, '--brokers', BOOTSTRAP, '--format', 'json'], { timeout: 30000 });
  return JSON.parse(stdout);
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png` });
  console.log(`  screenshot ${SHOTS}/${name}.png`);
}

async function rows(page, testid = 'messages') {
  return page.locator(`[data-testid=${testid}] [data-testid=message-row]`).evaluateAll((els) =>
    els.map((e) => ({ partition: Number(e.dataset.partition), offset: Number(e.dataset.offset), key: e.dataset.key })),
  );
}

async function open(page, path, testid) {
  await page.goto(BASE + path);
  await page.getByTestId(testid).waitFor({ timeout: 10000 });
}

// ---------------------------------------------------------------- scenarios

// SUITE=main (default): the scenarios above against an open broker;
// SUITE=auth: the login page against a broker with SASL listeners.
const SUITE = env('SUITE', 'main');
const scenarios = [];
const scenario = (name, fn, suite = 'main') => scenarios.push({ name, fn, suite });

// First while the shop's traffic is inside the graph's 60 s window.
scenario('event flow shows the shop services with edges to their topics', async (page) => {
  assert(SHOP, 'the Rust test ran the shop first (SHOP=1)');
  await open(page, '/flow', 'page-flow');
  const services = ['storefront', 'payment', 'inventory', 'shipping', 'order', 'notification', 'analytics'];
  const graph = async () => {
    const nodes = await page.locator('[data-testid=flow-node]').evaluateAll((els) => els.map((e) => ({ kind: e.dataset.kind, label: e.dataset.label })));
    const edges = await page.locator('[data-testid=flow-edge]').evaluateAll((els) => els.map((e) => ({ from: e.dataset.fromLabel, to: e.dataset.toLabel })));
    return { nodes, edges };
  };
  // A service is a node: a producer whose client id names it, or its consumer group.
  const nodeOf = (g, s) =>
    g.nodes.find((n) => n.kind === 'group' && n.label === s) ||
    g.nodes.find((n) => n.kind === 'producer' && (n.label === s || n.label.endsWith('/' + s) || n.label === 'shop-' + s));
  const g = await until('every shop service in the graph', async () => {
    const g = await graph();
    return services.every((s) => nodeOf(g, s)) ? g : false;
  }, 15000);
  for (const s of services) {
    const n = nodeOf(g, s);
    const touches = g.edges.filter((e) => (n.kind === 'producer' ? e.from === n.label : e.to === n.label));
    assert(touches.length > 0, `service ${s} (${n.kind} ${n.label}) has an edge to or from a topic`);
    for (const e of touches) {
      const other = n.kind === 'producer' ? e.to : e.from;
      assert(g.nodes.some((x) => x.kind === 'topic' && x.label === other), `edge of ${s} ends at a topic node (${other})`);
    }
  }
  const storefront = nodeOf(g, 'storefront');
  assert(storefront.kind === 'producer', 'storefront is a producer (it only publishes)');
  assert(g.edges.some((e) => e.from === storefront.label && e.to === 'shop.orders'), 'storefront → shop.orders');
  assert(g.edges.some((e) => e.from === 'shop.orders' && e.to === 'payment'), 'shop.orders → group payment');
  // The seeded data too: its producer's client id → the topic → the group that committed on it.
  const seed = env('SEED_CLIENT_ID', 'seed-producer');
  assert(g.edges.some((e) => e.from === seed && e.to === TOPIC), `${seed} → ${TOPIC}`);
  assert(g.edges.some((e) => e.from === TOPIC && e.to === GROUP), `${TOPIC} → group ${GROUP}`);
  console.log(`  ${g.nodes.length} nodes, ${g.edges.length} edges`);
  await shot(page, 'event-flow');
  // A producer opens its panel; a topic opens its page.
  await page.locator(`[data-testid=flow-node][data-kind=producer][data-label="${storefront.label}"]`).click();
  await page.getByTestId('producer-panel').waitFor();
  const cid = await page.getByTestId('producer-client-id').textContent();
  assert(cid.includes('storefront'), `producer panel shows the client id (${cid})`);
  await shot(page, 'event-flow-producer');
  await page.locator('[data-testid=flow-node][data-kind=topic][data-label="shop.orders"]').click();
  await page.waitForURL(`${BASE}/topics/shop.orders`);
  await page.getByTestId('page-topic').waitFor();
});

scenario('dead letters list the shop DLQ with the SDK headers, and replay', async (page) => {
  assert(SHOP, 'the Rust test ran the shop first (SHOP=1)');
  await open(page, '/dead-letters', 'page-dead-letters');
  const row = page.locator('[data-testid=dlq-row][data-topic="shop.orders.dlq"]');
  await row.waitFor({ timeout: 10000 });
  await row.getByRole('link', { name: 'shop.orders.dlq' }).click();
  await page.waitForURL(`${BASE}/dead-letters/shop.orders.dlq`);
  await page.getByTestId('message-browser').waitFor();
  await until('dead-lettered records', async () => (await rows(page)).length > 0);
  const errors = await page.locator('[data-testid=col-herald\\.error]').allTextContents();
  assert(errors.some((t) => t.trim().length > 0), `herald.error column filled (${JSON.stringify(errors)})`);
  const original = await page.locator('[data-testid=col-herald\\.original\\.topic]').allTextContents();
  assert(original.every((t) => t === 'shop.orders'), `herald.original.topic is shop.orders (${JSON.stringify(original)})`);
  await shot(page, 'dead-letters');
  const n = (await rows(page)).length;
  await row.getByTestId('dlq-replay').click();
  const replayed = await until('replay answer', async () => {
    const t = await row.getByTestId('dlq-replayed').textContent({ timeout: 200 });
    return t && t.match(/replayed (\d+)/);
  });
  assert(Number(replayed[1]) === n, `replayed every dead letter (${replayed[1]} of ${n})`);
});

scenario('a topic created in the UI appears in kcat -L', async (page) => {
  const name = `ui-made-${Date.now()}`;
  await open(page, '/topics', 'page-topics');
  await page.getByTestId('topic-create-open').click();
  await page.getByTestId('topic-name').fill(name);
  await page.getByTestId('topic-partitions').fill('2');
  await page.getByTestId('topic-configs').fill('retention.ms=3600000');
  await shot(page, 'topics-create');
  await page.getByTestId('topic-create-submit').click();
  const made = page.locator(`[data-testid=topic-row][data-topic="${name}"]`);
  await made.waitFor({ timeout: 10000 });
  await made.scrollIntoViewIfNeeded();
  // Plain `kcat -L` (all topics): `-L -t NAME` would ask for that topic's
  // metadata and so auto-create it, passing even if the UI had done nothing.
  // 2 partitions, not the broker's default of 3, for the same reason.
  const meta = await kcat(['-L', '-b', BOOTSTRAP]);
  assert(meta.includes(`topic "${name}" with 2 partitions`), `kcat -L lists ${name} with 2 partitions:\n${meta}`);
  await shot(page, 'topics');
  // Its page shows the configs it was made with, and lets one change.
  await open(page, `/topics/${name}?tab=configs`, 'configs-table');
  const ret = page.locator('[data-testid=config-row][data-config="retention.ms"]');
  assert((await ret.textContent()).includes('3600000'), 'retention.ms as created');
  await ret.getByTestId('config-edit').click();
  await ret.getByTestId('config-value').fill('7200000');
  await ret.getByTestId('config-save').click();
  await until('retention.ms altered', async () => (await page.locator('[data-testid=config-row][data-config="retention.ms"]').textContent()).includes('7200000'));
  await shot(page, 'topic-configs');
  // Deleted in the UI (confirmed in place), gone from kcat -L.
  await open(page, '/topics', 'page-topics');
  const r = page.locator(`[data-testid=topic-row][data-topic="${name}"]`);
  await r.getByTestId('topic-delete').click();
  await r.getByTestId('topic-delete-confirm').click();
  await r.waitFor({ state: 'detached', timeout: 10000 });
  await until('topic gone from kcat -L', async () => !(await kcat(['-L', '-b', BOOTSTRAP])).includes(`topic "${name}"`), 10000, 300);
});

scenario('the message browser finds a record by key and shows pretty JSON', async (page) => {
  await open(page, `/topics/${TOPIC}`, 'message-browser');
  await until('the newest records', async () => (await rows(page)).length === 20);
  await page.getByTestId('filter').fill('key == "order-7"');
  await page.getByTestId('search').click();
  const found = await until('exactly order-7', async () => {
    const r = await rows(page);
    return r.length === 1 && r[0].key === 'order-7' ? r : false;
  });
  await page.locator('[data-testid=message-row]').first().click();
  const value = page.getByTestId('detail-value');
  await value.waitFor();
  assert((await value.getAttribute('data-mode')) === 'json', 'a JSON value opens as JSON');
  const text = await value.innerText();
  assert(/\{\n {2}"/.test(text), `pretty-printed (indented):\n${text}`);
  assert(text.includes('"order_id": "order-7"'), `the record's own fields:\n${text}`);
  assert((await value.locator('.j-key').count()) > 0 && (await value.locator('.j-num').count()) > 0, 'highlighted keys and numbers');
  const headers = await page.getByTestId('detail-headers').innerText();
  assert(headers.includes('eventType') && headers.includes('OrderPlaced'), `headers shown: ${headers}`);
  const evType = await page.locator('[data-testid=message-row] td').nth(4).textContent();
  assert(evType === 'OrderPlaced', `eventType column (${evType})`);
  await shot(page, 'message-browser');
  await page.getByTestId('mode-hex').click();
  assert((await page.getByTestId('detail-value').innerText()).startsWith('00000000  7b'), 'hex view starts with "{"');
  console.log(`  found ${JSON.stringify(found)}`);

  // A bad expression shows the API's message.
  await page.getByTestId('filter').fill('key == ');
  await page.getByTestId('search').click();
  const err = await page.getByTestId('browser-error').textContent({ timeout: 10000 });
  assert(/FILTER/.test(err) && /column/.test(err), `filter error shown: ${err}`);

  // Value filter: totals are 10 * i, so value.total > 100 keeps order-11..19.
  await page.getByTestId('filter').fill('value.total > 100');
  await page.getByTestId('search').click();
  await until('nine records over 100', async () => (await rows(page)).length === 9);

  // Paging both ways: partition 0 alone, 2 a page, from the oldest.
  await page.getByTestId('filter').fill('');
  for (const p of [1, 2]) await page.getByTestId(`part-${p}`).uncheck();
  await page.getByTestId('seek').selectOption('oldest');
  await page.getByTestId('limit').fill('2');
  await page.getByTestId('search').click();
  const first = await until('first page', async () => {
    const r = await rows(page);
    return r.length === 2 && r.every((x) => x.partition === 0) ? r : false;
  });
  await page.getByTestId('page-next').click();
  const second = await until('second page', async () => {
    const r = await rows(page);
    return r.length > 0 && r[0].offset !== first[0].offset ? r : false;
  });
  assert(Math.min(...second.map((r) => r.offset)) > Math.max(...first.map((r) => r.offset)), `next page is later: ${JSON.stringify({ first, second })}`);
  await page.getByTestId('page-prev').click();
  await until('back on the first page', async () => JSON.stringify(await rows(page)) === JSON.stringify(first));

  // Seek to an offset (partition 0 still alone): the page starts there.
  await page.getByTestId('seek').selectOption('offset');
  await page.getByTestId('seek-offset').fill('3');
  await page.getByTestId('search').click();
  await until('page from offset 3', async () => {
    const r = await rows(page);
    return r.length === 2 && r[0].offset === 3 && r[1].offset === 4;
  });
  // Seek by timestamp: from 2000 every record of the partition, from next year none.
  await page.getByTestId('part-1').check();
  await page.getByTestId('part-2').check();
  await page.getByTestId('limit').fill('50');
  await page.getByTestId('seek').selectOption('timestamp');
  await page.getByTestId('seek-timestamp').fill('2000-01-01T00:00:00');
  await page.getByTestId('search').click();
  await until('all 20 records from 2000', async () => (await rows(page)).length === 20);
  const nextYear = new Date().getFullYear() + 1;
  await page.getByTestId('seek-timestamp').fill(`${nextYear}-01-01T00:00:00`);
  await page.getByTestId('search').click();
  await page.getByTestId('no-messages').waitFor({ timeout: 10000 });
});

scenario('record data is shown as text, never run as markup (XSS)', async (page) => {
  const evil = '<img src=x onerror="window.__xss=1">';
  const value = JSON.stringify({ eventType: '<script>window.__xss=2</script>', note: '</pre><img src=y onerror="window.__xss=3">' });
  await kcat(['-P', '-b', BOOTSTRAP, '-t', TOPIC, '-K', '\t', '-H', `x-evil=${evil}`], `${evil}\t${value}\n`);
  await open(page, `/topics/${TOPIC}`, 'message-browser');
  await page.getByTestId('filter').fill('key startsWith "<img"');
  await page.getByTestId('search').click();
  await until('the hostile record', async () => (await rows(page)).length === 1);
  await page.locator('[data-testid=message-row]').first().click();
  await page.getByTestId('detail-value').waitFor();
  for (const mode of ['text', 'hex', 'json']) await page.getByTestId(`mode-${mode}`).click();
  await page.waitForTimeout(300);
  const injected = await page.evaluate(() => ({
    flag: window.__xss ?? null,
    imgs: document.querySelectorAll('main img').length,
    scripts: document.querySelectorAll('main script').length,
  }));
  assert(injected.flag === null && injected.imgs === 0 && injected.scripts === 0, `nothing ran or was parsed as HTML: ${JSON.stringify(injected)}`);
  const shown = await page.getByTestId('detail-headers').innerText();
  assert(shown.includes(evil), `the header is shown as its text: ${shown}`);
  assert((await page.getByTestId('detail-value').innerText()).includes('<script>'), 'the value is shown as its text');
});

scenario('the live tail shows all of a 5-record burst within 2 s', async (page) => {
  await open(page, `/topics/${TOPIC}`, 'message-browser');
  await page.getByTestId('tail-toggle').click();
  await page.locator('[data-testid=tail-status][data-state=live]').waitFor({ timeout: 10000 });
  const tag = `burst-${Date.now()}`;
  const lines = Array.from({ length: 5 }, (_, i) => `${tag}-${i}\t{"eventType":"OrderPlaced","order_id":"${tag}-${i}","total":${i}}`).join('\n') + '\n';
  await kcat(['-P', '-b', BOOTSTRAP, '-t', TOPIC, '-K', '\t', '-z', 'none'], lines);
  const produced = Date.now();
  const keys = await until('all 5 burst records in the tail', async () => {
    const k = (await rows(page, 'tail-messages')).map((r) => r.key).filter((k) => k.startsWith(tag));
    return k.length === 5 ? k : false;
  }, 2000, 25);
  const ms = Date.now() - produced;
  assert(new Set(keys).size === 5, `five distinct records: ${keys}`);
  console.log(`  5 of 5 records shown ${ms} ms after kcat returned`);
  await shot(page, 'live-tail');
  // A bigger burst than the list holds: the newest 1000 stay, the page does not grow.
  const many = Array.from({ length: 1100 }, (_, i) => `${tag}-many-${i}\t{"n":${i}}`).join('\n') + '\n';
  await kcat(['-P', '-b', BOOTSTRAP, '-t', TOPIC, '-K', '\t', '-z', 'none'], many);
  await until('the tail capped at 1000', async () => (await page.getByTestId('tail-count').textContent()) === '1000', 10000, 100);
  await page.waitForTimeout(500);
  assert((await page.locator('[data-testid=tail-messages] [data-testid=message-row]').count()) === 1000, 'exactly 1000 rows');
  await page.getByTestId('tail-toggle').click();
});

scenario('a record produced from the UI is read back by kcat', async (page) => {
  await open(page, `/topics/${TOPIC}?tab=produce`, 'produce-form');
  await page.getByTestId('produce-key').fill('from-the-ui');
  await page.getByTestId('produce-value').fill('{"eventType":"OrderPlaced","order_id":"from-the-ui","total":1}');
  await page.getByTestId('produce-headers').fill('eventType: OrderPlaced\nsource: console');
  await page.getByTestId('produce-submit').click();
  const res = await page.getByTestId('produce-result').textContent({ timeout: 10000 });
  const [, p, o] = res.match(/partition (\d+) at offset (\d+)/);
  await shot(page, 'produce');
  const got = await kcat(['-C', '-b', BOOTSTRAP, '-t', TOPIC, '-p', p, '-o', o, '-c', '1', '-e', '-f', '%k|%h|%s\n']);
  assert(got.startsWith('from-the-ui|') && got.includes('source=console') && got.includes('"order_id":"from-the-ui"'), `kcat reads it back: ${got}`);
});

scenario('group lag shown matches herald group describe', async (page) => {
  await open(page, `/groups/${GROUP}`, 'offsets-table');
  const cli = await groupDescribe(GROUP);
  const want = cli.offsets.filter((o) => o.committed_offset != null);
  assert(want.length > 0, `the CLI sees committed offsets: ${JSON.stringify(cli)}`);
  const shown = await until('the lag table', async () => {
    const r = await page.locator('[data-testid=offset-row]').evaluateAll((els) =>
      els.map((e) => ({ topic: e.dataset.topic, partition: Number(e.dataset.partition), committed: Number(e.dataset.committed), lag: Number(e.dataset.lag) })),
    );
    return r.length === want.length ? r : false;
  });
  for (const o of want) {
    const s = shown.find((x) => x.topic === o.topic && x.partition === o.partition);
    assert(s, `UI shows ${o.topic}/${o.partition}`);
    assert(s.committed === o.committed_offset && s.lag === o.lag, `${o.topic}/${o.partition}: UI committed ${s.committed} lag ${s.lag}, CLI ${o.committed_offset} lag ${o.lag}`);
    // And the cell the user reads says the same.
    const cell = await page.locator(`[data-testid=offset-row][data-topic="${o.topic}"][data-partition="${o.partition}"] [data-testid=offset-lag]`).textContent();
    assert(Number(cell.replace(/,/g, '')) === o.lag, `lag cell ${cell} = ${o.lag}`);
  }
  const total = Number((await page.getByTestId('group-total-lag').textContent()).replace(/,/g, ''));
  assert(total === cli.total_lag, `total lag ${total} = CLI ${cli.total_lag}`);
  console.log(`  lag per partition ${JSON.stringify(shown)} = CLI`);
  await shot(page, 'consumer-group');
  await open(page, '/groups', 'groups-table');
  const listed = page.locator(`[data-testid=group-row][data-group="${GROUP}"] [data-testid=group-lag]`);
  await until('group list lag', async () => Number((await listed.textContent()).replace(/,/g, '')) === cli.total_lag);
  await shot(page, 'consumer-groups');
});

scenario('a group with a member shows it with its assignment, and refuses a reset', async (page) => {
  const group = env('LIVE_GROUP');
  const client = env('LIVE_CLIENT_ID');
  await open(page, `/groups/${group}`, 'members-table');
  const member = await until('the member with its assignment', async () => {
    const cells = await page.locator('[data-testid=member-row] td').allTextContents();
    return cells.length === 4 && cells[0] === client && /orders: 0, 1, 2/.test(cells[3]) ? cells : false;
  }, 20000);
  assert(/127\.0\.0\.1/.test(member[1]), `the member's host (${member[1]})`);
  assert((await page.getByTestId('group-state').textContent()) === 'Stable', 'state Stable');
  const cli = await groupDescribe(group);
  assert(cli.members.length === 1 && cli.members[0].client_id === client, `the CLI sees the same member: ${JSON.stringify(cli.members)}`);
  await shot(page, 'consumer-group-member');
  await page.getByTestId('reset-topic').selectOption(TOPIC);
  await page.getByTestId('reset-to').selectOption('latest');
  // The preview may run; applying it is refused while the member is there.
  await page.getByTestId('reset-preview').click();
  await page.getByTestId('reset-preview-table').waitFor({ timeout: 10000 });
  await page.getByTestId('reset-apply').click();
  const err = await page.getByTestId('reset-error').textContent({ timeout: 10000 });
  assert(/NON_EMPTY_GROUP/.test(err), `a reset is refused while the group has a member: ${err}`);
  const after = await groupDescribe(group);
  assert(after.offsets.every((o) => o.committed_offset == null), `nothing was committed: ${JSON.stringify(after.offsets)}`);
});

scenario('a dry-run reset, then a real one, moves the group; then delete it', async (page) => {
  const before = await groupDescribe(GROUP);
  const committedBefore = before.offsets.filter((o) => o.committed_offset != null);
  assert(committedBefore.some((o) => o.committed_offset > 0), `the group starts past offset 0: ${JSON.stringify(committedBefore)}`);
  await open(page, `/groups/${GROUP}`, 'reset-form');
  await page.getByTestId('reset-topic').selectOption(TOPIC);
  await page.getByTestId('reset-to').selectOption('earliest');
  assert(await page.getByTestId('reset-apply').isDisabled(), 'Apply waits for a preview');
  await page.getByTestId('reset-preview').click();
  await page.getByTestId('reset-preview-table').waitFor({ timeout: 10000 });
  const preview = await page.locator('[data-testid=reset-preview-table] [data-testid=reset-row]').evaluateAll((els) =>
    els.map((e) => ({ partition: Number(e.dataset.partition), new: Number(e.querySelector('[data-testid=reset-new]').textContent.replace(/,/g, '')) })),
  );
  assert(preview.length > 0 && preview.every((r) => r.new === 0), `preview moves every partition to 0: ${JSON.stringify(preview)}`);
  await shot(page, 'consumer-group-reset-preview');
  const mid = await groupDescribe(GROUP);
  assert(JSON.stringify(mid.offsets.map((o) => o.committed_offset)) === JSON.stringify(before.offsets.map((o) => o.committed_offset)), 'the dry run committed nothing');
  await page.getByTestId('reset-apply').click();
  await page.getByTestId('reset-applied').waitFor({ timeout: 10000 });
  const after = await until('committed offsets at 0', async () => {
    const a = await groupDescribe(GROUP);
    const t = a.offsets.filter((o) => o.topic === TOPIC && o.committed_offset != null);
    return t.length > 0 && t.every((o) => o.committed_offset === 0 && o.lag === o.end_offset) ? a : false;
  });
  // The page shows the moved group: lag = high watermark on every partition.
  await until('UI lag = high watermark', async () => {
    const r = await page.locator(`[data-testid=offset-row][data-topic="${TOPIC}"]`).evaluateAll((els) => els.map((e) => [Number(e.dataset.committed), Number(e.dataset.lag)]));
    const cli = after.offsets.filter((o) => o.topic === TOPIC);
    return r.length === cli.length && r.every(([c, l], i) => c === 0 && l === cli[i].end_offset);
  });
  await shot(page, 'consumer-group-reset-applied');

  // Delete the group (confirmed in place): gone from the list and for the CLI.
  await page.getByTestId('group-delete').click();
  await page.getByTestId('group-delete-confirm').click();
  await page.waitForURL(`${BASE}/groups`);
  await until('group gone from the list', async () => (await page.locator(`[data-testid=group-row][data-group="${GROUP}"]`).count()) === 0);
  const gone = await groupDescribe(GROUP).then(
    (g) => ({ ok: g.offsets.length === 0, seen: g }),
    (e) => ({ ok: /unknown group|group not in the response/.test(String(e.stderr || e.message)), seen: String(e.stderr || e.message) }),
  );
  assert(gone.ok, `herald group describe no longer knows the group: ${JSON.stringify(gone.seen)}`);
});

scenario('the overview charts throughput', async (page) => {
  await open(page, '/', 'page-overview');
  const topics = await until('topic count', async () => {
    const t = (await page.getByTestId('ov-topics').textContent()).trim();
    return /^\d+$/.test(t) ? Number(t) : false;
  });
  assert(topics >= 1, `topics counted (${topics})`);
  await page.locator('[data-testid=chart-records] canvas').waitFor();
  // Some traffic on the charts: three bursts of 300 records, a second apart.
  for (let i = 0; i < 3; i++) {
    const burst = Array.from({ length: 300 }, (_, j) => `{"eventType":"OrderPlaced","order_id":"ov-${i}-${j}","total":${j}}`).join('\n') + '\n';
    await kcat(['-P', '-b', BOOTSTRAP, '-t', TOPIC, '-z', 'none'], burst);
    await page.waitForTimeout(1000);
  }
  // The page's own poll saw it: "In now" or the topic count moved past its dashes.
  await until('a sample with records in', async () => {
    const o = await page.evaluate(() => fetch('/api/overview').then((r) => r.json()));
    return o.series.some((p) => p.records_in > 0);
  });
  await page.waitForTimeout(1500);
  await shot(page, 'overview');
});

scenario(
  'with SASL listeners the console asks for a login and acts as that user',
  async (page) => {
    const user = env('LOGIN_USER');
    const password = env('LOGIN_PASSWORD');
    await open(page, '/topics', 'page-login');
    assert((await page.getByTestId('nav').count()) === 0, 'no page before the login');
    await page.getByTestId('login-username').fill(user);
    await page.getByTestId('login-password').fill(password + '-wrong');
    await page.getByTestId('login-submit').click();
    const err = await page.getByTestId('login-error').textContent({ timeout: 15000 });
    assert(/wrong/i.test(err), `a bad password is refused: ${err}`);
    await shot(page, 'login');
    await page.getByTestId('login-password').fill(password);
    await page.getByTestId('login-submit').click();
    await page.getByTestId('page-topics').waitFor({ timeout: 15000 });
    const who = await page.getByTestId('session-user').textContent();
    assert(who.includes(`User:${user}`), `logged in as User:${user} (${who})`);
    // A mutating call carries the session's CSRF token: creating a topic works.
    const name = `after-login-${Date.now()}`;
    await page.getByTestId('topic-create-open').click();
    await page.getByTestId('topic-name').fill(name);
    await page.getByTestId('topic-create-submit').click();
    await page.locator(`[data-testid=topic-row][data-topic="${name}"]`).waitFor({ timeout: 10000 });
    // Without the token the API refuses it (what the header protects against).
    const forged = await page.evaluate(async () => {
      const r = await fetch('/api/topics', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'forged', partitions: 1, configs: {} }) });
      return r.status;
    });
    assert(forged === 403, `a POST without X-Herald-CSRF is refused 403 (${forged})`);
    // Logging out brings the login page back, and a reload stays there.
    await page.getByTestId('logout').click();
    await page.getByTestId('page-login').waitFor({ timeout: 10000 });
    await page.reload();
    await page.getByTestId('page-login').waitFor({ timeout: 10000 });
  },
  'auth',
);

// ---------------------------------------------------------------- runner

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});
let failed = 0;
let passed = 0;
try {
  for (const s of scenarios) {
    if (s.suite !== SUITE) continue;
    if (ONLY && !ONLY.some((o) => s.name.includes(o))) continue;
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    const t0 = Date.now();
    try {
      await s.fn(page);
      const real = pageErrors.filter((e) => !/Failed to load resource/.test(e));
      assert(real.length === 0, `no script errors in the page: ${real.join('; ')}`);
      passed++;
      console.log(`ok   ${s.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${s.name}: ${e.stack || e}`);
      if (pageErrors.length) console.log(`     page errors: ${pageErrors.join('; ')}`);
      try {
        await page.screenshot({ path: `${FAILURES}/herald-console-FAILED-${s.name.replace(/[^a-z0-9]+/gi, '-')}.png` });
      } catch {
        // The page may be gone; the message above says why.
      }
      console.log(`     screenshot ${FAILURES}/herald-console-FAILED-${s.name.replace(/[^a-z0-9]+/gi, '-')}.png`);
    } finally {
      await context.close();
    }
  }
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

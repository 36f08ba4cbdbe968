// The message browser: choose partitions, seek (oldest, newest, offset,
// timestamp), filter with the API's expression language, page both ways,
// expand a record (JSON / text / hex, headers), live tail, produce.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, post, seg, errorText } from './api.js';
import { fmtTime, localToMs } from './util.js';
import { ValueView, defaultMode, preview } from './render.js';

// Newest-first tail list cap: a fast topic cannot grow the page without bound.
export const TAIL_RECORDS_MAX = 1000;
const TAIL_FLUSH_MS = 100;

function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, String(v));
  return q.toString();
}

function headerValue(m, name) {
  const h = (m.headers || []).find((x) => x.key === name);
  if (!h) return '';
  return h.value != null ? h.value : h.value_b64 != null ? '(binary)' : '';
}

function MessageDetail({ m, colspan }) {
  const [mode, setMode] = useState(defaultMode(m.value, m.value_b64));
  const modeBtn = (name, label) =>
    html`<button type="button" class=${mode === name ? 'tab active' : 'tab'} data-testid=${'mode-' + name}
      onClick=${() => setMode(name)}>${label}</button>`;
  return html`<tr class="detail" data-testid="message-detail">
    <td colspan=${colspan}>
      <div class="detail-head">
        <span class="muted">partition ${m.partition} · offset ${m.offset} · ${fmtTime(m.timestamp)}</span>
        <span class="modes">${modeBtn('json', 'JSON')}${modeBtn('text', 'Text')}${modeBtn('hex', 'Hex')}</span>
      </div>
      <div class="detail-grid">
        <div>
          <h4>Key</h4>
          <${ValueView} text=${m.key} b64=${m.key_b64} mode=${mode === 'hex' ? 'hex' : 'text'} testid="detail-key" />
          <h4>Headers (${(m.headers || []).length})</h4>
          <table class="headers" data-testid="detail-headers">
            <tbody>
              ${(m.headers || []).map(
                (h) => html`<tr><th>${h.key}</th><td>${h.value != null ? h.value : h.value_b64 != null ? `(binary, base64 ${h.value_b64})` : 'null'}</td></tr>`,
              )}
            </tbody>
          </table>
        </div>
        <div>
          <h4>Value${m.value_truncated ? html` <span class="warn">(cut at 256 KiB)</span>` : ''}</h4>
          <${ValueView} text=${m.value} b64=${m.value_b64} mode=${mode} testid="detail-value" />
        </div>
      </div>
    </td>
  </tr>`;
}

export function MessageTable({ messages, headerColumns = [], testid = 'messages' }) {
  const [open, setOpen] = useState(() => new Set());
  const toggle = (id) =>
    setOpen((prev) => {
      const next = new Set(prev);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const cols = 6 + headerColumns.length;
  return html`<table class="grid messages" data-testid=${testid}>
    <thead>
      <tr>
        <th>Partition</th><th>Offset</th><th>Timestamp</th><th>Key</th><th>eventType</th>
        ${headerColumns.map((h) => html`<th>${h}</th>`)}
        <th>Value</th>
      </tr>
    </thead>
    <tbody>
      ${messages.length === 0 && html`<tr><td colspan=${cols} class="muted" data-testid="no-messages">No records.</td></tr>`}
      ${messages.map((m) => {
        const id = `${m.partition}:${m.offset}`;
        return [
          html`<tr key=${id} class=${'msg' + (open.has(id) ? ' open' : '')} data-testid="message-row"
              data-partition=${m.partition} data-offset=${m.offset} data-key=${m.key ?? ''}
              onClick=${() => toggle(id)}>
            <td>${m.partition}</td>
            <td>${m.offset}</td>
            <td class="nowrap">${fmtTime(m.timestamp)}</td>
            <td class="key">${m.key != null ? m.key : m.key_b64 != null ? '(binary)' : html`<span class="muted">null</span>`}</td>
            <td>${m.event_type || ''}</td>
            ${headerColumns.map((h) => html`<td class="hdrcol" data-testid=${'col-' + h}>${headerValue(m, h)}</td>`)}
            <td class="preview">${preview(m.value, m.value_b64)}</td>
          </tr>`,
          open.has(id) && html`<${MessageDetail} key=${id + ':d'} m=${m} colspan=${cols} />`,
        ];
      })}
    </tbody>
  </table>`;
}

export function MessageBrowser({ topic, partitions, headerColumns = [], allowTail = true }) {
  const [chosen, setChosen] = useState(() => new Set(partitions));
  const [seek, setSeek] = useState('newest');
  const [offset, setOffset] = useState('0');
  const [timestamp, setTimestamp] = useState('');
  const [filter, setFilter] = useState('');
  const [limit, setLimit] = useState('50');
  // read_committed, as a transactional application's consumers read: records
  // of aborted or still open transactions are not shown.
  const [isolation, setIsolation] = useState('read_committed');
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [tailOn, setTailOn] = useState(false);
  const [tail, setTail] = useState([]);
  const [tailState, setTailState] = useState('off');
  const inflight = useRef(null);

  useEffect(() => setChosen(new Set(partitions)), [partitions.join(',')]);

  const partParam = () => (chosen.size === partitions.length ? '' : [...chosen].sort((a, b) => a - b).join(','));

  const load = async (params) => {
    if (inflight.current) inflight.current.abort();
    const ctl = new AbortController();
    inflight.current = ctl;
    setBusy(true);
    setError(null);
    try {
      const q = qs({ partitions: partParam(), filter: filter.trim(), limit, isolation, ...params });
      const res = await get(`/api/topics/${seg(topic)}/messages?${q}`, { signal: ctl.signal });
      setPage(res);
    } catch (e) {
      if (e.name !== 'AbortError') setError(errorText(e));
    } finally {
      if (inflight.current === ctl) {
        inflight.current = null;
        setBusy(false);
      }
    }
  };

  const search = (e) => {
    if (e) e.preventDefault();
    if (chosen.size === 0) {
      setError('Choose at least one partition.');
      return;
    }
    const p = { seek };
    if (seek === 'offset') p.offset = offset;
    if (seek === 'timestamp') {
      const ms = localToMs(timestamp);
      if (ms == null) {
        setError('Enter a timestamp.');
        return;
      }
      p.timestamp = ms;
    }
    load(p);
  };

  // First page when the topic opens; leaving aborts the scan (the API stops it).
  useEffect(() => {
    search();
    return () => inflight.current && inflight.current.abort();
  }, [topic]);

  useEffect(() => {
    if (!tailOn) {
      setTailState('off');
      return undefined;
    }
    setTail([]);
    setTailState('connecting');
    const q = qs({ partitions: partParam(), filter: filter.trim(), isolation });
    const es = new EventSource(`/api/topics/${seg(topic)}/tail${q ? '?' + q : ''}`);
    es.onopen = () => setTailState('live');
    es.onerror = () => setTailState(es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
    // Every record of a burst is kept, newest first, capped. Records are
    // gathered and shown together every TAIL_FLUSH_MS: one render per record
    // made a 1000-record burst take many seconds to draw.
    let pending = [];
    let flush = null;
    const show = () => {
      flush = null;
      const batch = pending.reverse();
      pending = [];
      setTail((prev) => {
        const next = batch.length >= TAIL_RECORDS_MAX ? batch.slice(0, TAIL_RECORDS_MAX) : batch.concat(prev);
        if (next.length > TAIL_RECORDS_MAX) next.length = TAIL_RECORDS_MAX;
        return next;
      });
    };
    es.addEventListener('record', (ev) => {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      pending.push(m);
      // Only the newest TAIL_RECORDS_MAX can be shown; older ones of a huge burst go now.
      if (pending.length > 2 * TAIL_RECORDS_MAX) pending = pending.slice(-TAIL_RECORDS_MAX);
      if (!flush) flush = setTimeout(show, TAIL_FLUSH_MS);
    });
    // The API ends the stream with an `error` event ({error, message}) when
    // the broker refuses a read; connection errors carry no data.
    es.addEventListener('error', (ev) => {
      if (!ev.data) return;
      try {
        const e = JSON.parse(ev.data);
        setError(e.message ? `${e.error}: ${e.message}` : String(e.error));
      } catch {
        setError(String(ev.data));
      }
      es.close();
      setTailState('closed');
    });
    return () => {
      es.close();
      clearTimeout(flush);
    };
  }, [tailOn, topic, isolation]);

  const togglePart = (p) =>
    setChosen((prev) => {
      const next = new Set(prev);
      if (next.has(p)) next.delete(p);
      else next.add(p);
      return next;
    });

  return html`<section class="browser" data-testid="message-browser">
    <form class="controls" onSubmit=${search} data-testid="browser-form">
      <fieldset class="parts">
        <legend>Partitions</legend>
        ${partitions.map(
          (p) => html`<label class="chk"><input type="checkbox" data-testid=${'part-' + p} checked=${chosen.has(p)}
            onChange=${() => togglePart(p)} />${p}</label>`,
        )}
        <button type="button" class="link" onClick=${() => setChosen(new Set(partitions))}>all</button>
      </fieldset>
      <label>Seek
        <select data-testid="seek" value=${seek} onChange=${(e) => setSeek(e.target.value)}>
          <option value="newest">newest</option>
          <option value="oldest">oldest</option>
          <option value="offset">offset</option>
          <option value="timestamp">timestamp</option>
        </select>
      </label>
      ${seek === 'offset' &&
      html`<label>Offset <input type="number" min="0" class="num" data-testid="seek-offset" value=${offset}
        onInput=${(e) => setOffset(e.target.value)} /></label>`}
      ${seek === 'timestamp' &&
      html`<label>From <input type="datetime-local" step="1" data-testid="seek-timestamp" value=${timestamp}
        onInput=${(e) => setTimestamp(e.target.value)} /></label>`}
      <label class="grow">Filter
        <input type="text" data-testid="filter" placeholder='key == "order-42" && value.total_cents > 100'
          value=${filter} onInput=${(e) => setFilter(e.target.value)} spellcheck="false" />
      </label>
      <label title="read_committed leaves out records of aborted transactions and stops before an open one, as a transactional application's consumers read; read_uncommitted shows every record">Isolation
        <select data-testid="isolation" value=${isolation} onChange=${(e) => setIsolation(e.target.value)}>
          <option value="read_committed">read_committed</option>
          <option value="read_uncommitted">read_uncommitted</option>
        </select>
      </label>
      <label>Limit <input type="number" min="1" max="500" class="num" data-testid="limit" value=${limit}
        onInput=${(e) => setLimit(e.target.value)} /></label>
      <button type="submit" class="primary" data-testid="search" disabled=${busy}>${busy ? 'Scanning…' : 'Search'}</button>
      ${allowTail &&
      html`<button type="button" class=${tailOn ? 'danger' : ''} data-testid="tail-toggle"
        onClick=${() => setTailOn(!tailOn)}>${tailOn ? 'Stop live tail' : 'Live tail'}</button>`}
    </form>
    ${error && html`<div class="error" data-testid="browser-error">${error}</div>`}
    ${tailOn
      ? html`<div class="status" data-testid="tail-status" data-state=${tailState}>
            Live tail: <b>${tailState}</b> · <span data-testid="tail-count">${tail.length}</span> records (newest first, at most ${TAIL_RECORDS_MAX})
          </div>
          <${MessageTable} messages=${tail} headerColumns=${headerColumns} testid="tail-messages" />`
      : page &&
        html`<div class="status" data-testid="browser-status">
            <span data-testid="result-count">${page.messages.length}</span> records · scanned ${page.scanned}
            · <span data-testid="isolation-note">${page.isolation === 'read_uncommitted'
              ? 'read_uncommitted: records of aborted and open transactions included'
              : 'read_committed: records of aborted and open transactions hidden'}</span>
            ${page.budget_exhausted && html` · <span class="warn" data-testid="budget-exhausted">scan budget reached; page on to scan further</span>`}
            <span class="pager">
              <button type="button" data-testid="page-prev" disabled=${!page.prev_cursor || busy}
                onClick=${() => load({ cursor: page.prev_cursor, direction: 'backward' })}>‹ Previous</button>
              <button type="button" data-testid="page-next" disabled=${!page.next_cursor || busy}
                onClick=${() => load({ cursor: page.next_cursor, direction: 'forward' })}>Next ›</button>
            </span>
          </div>
          <${MessageTable} messages=${page.messages} headerColumns=${headerColumns} />`}
  </section>`;
}

export function ProduceForm({ topic, partitions, onProduced }) {
  const [partition, setPartition] = useState('');
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const [headers, setHeaders] = useState('');
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    // One header a line: "name: value" (the first colon splits).
    const hs = [];
    for (const line of headers.split('\n')) {
      if (!line.trim()) continue;
      const i = line.indexOf(':');
      if (i <= 0) {
        setError(`Header line "${line}" is not "name: value".`);
        return;
      }
      hs.push({ key: line.slice(0, i).trim(), value: line.slice(i + 1).trim() });
    }
    setBusy(true);
    try {
      const res = await post(`/api/topics/${seg(topic)}/messages`, {
        partition: partition === '' ? null : Number(partition),
        key: key === '' ? null : key,
        value: value === '' ? null : value,
        headers: hs,
      });
      setResult(res);
      if (onProduced) onProduced(res);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return html`<form class="produce card" onSubmit=${submit} data-testid="produce-form">
    <h3>Produce a record</h3>
    <div class="row">
      <label>Partition
        <select data-testid="produce-partition" value=${partition} onChange=${(e) => setPartition(e.target.value)}>
          <option value="">by key (default partitioner)</option>
          ${partitions.map((p) => html`<option value=${String(p)}>${p}</option>`)}
        </select>
      </label>
      <label class="grow">Key <input type="text" data-testid="produce-key" value=${key} onInput=${(e) => setKey(e.target.value)} /></label>
    </div>
    <label>Value
      <textarea rows="6" data-testid="produce-value" spellcheck="false" value=${value} onInput=${(e) => setValue(e.target.value)}></textarea>
    </label>
    <label>Headers (one a line, <code>name: value</code>)
      <textarea rows="3" data-testid="produce-headers" spellcheck="false" value=${headers} onInput=${(e) => setHeaders(e.target.value)}></textarea>
    </label>
    <div class="row">
      <button type="submit" class="primary" data-testid="produce-submit" disabled=${busy}>Produce</button>
      ${result && html`<span class="ok" data-testid="produce-result">Written to partition ${result.partition} at offset ${result.offset}</span>`}
      ${error && html`<span class="error" data-testid="produce-error">${error}</span>`}
    </div>
  </form>`;
}

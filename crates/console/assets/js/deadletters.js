// Dead letters: every *.dlq topic, its records with the events SDK's error
// headers as columns, and Replay (back to the original topic).
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { get, post, seg, errorText } from './api.js';
import { Link, navigate } from './router.js';
import { fmtNum, usePoll } from './util.js';
import { MessageBrowser } from './browser.js';

export const DLQ_HEADERS = [
  'herald.original.topic',
  'herald.original.partition',
  'herald.original.offset',
  'herald.error',
  'herald.attempts',
  'herald.failed.at',
  'herald.group',
];

function Replay({ topic, onDone }) {
  const [busy, setBusy] = useState(false);
  const [res, setRes] = useState(null);
  const [error, setError] = useState(null);
  const go = async (e) => {
    e.stopPropagation();
    setBusy(true);
    setError(null);
    try {
      const r = await post(`/api/dead-letters/${seg(topic)}/replay`, {});
      setRes(r);
      onDone();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return html`<span>
    <button class="primary" data-testid="dlq-replay" disabled=${busy} onClick=${go}>${busy ? 'Replaying…' : 'Replay'}</button>
    ${res && html` <span class="ok" data-testid="dlq-replayed">replayed ${res.replayed}</span>`}
    ${error && html` <span class="error" data-testid="dlq-error">${error}</span>`}
  </span>`;
}

function DlqRecords({ topic }) {
  const t = usePoll((signal) => get(`/api/topics/${seg(topic)}`, { signal }), 0, [topic]);
  if (t.error) return html`<div class="error">${t.error}</div>`;
  if (!t.data) return html`<p class="muted">Loading…</p>`;
  const parts = t.data.partitions.map((p) => p.partition).sort((a, b) => a - b);
  return html`<${MessageBrowser} key=${topic} topic=${topic} partitions=${parts} headerColumns=${DLQ_HEADERS} allowTail=${false} />`;
}

export function DeadLettersPage({ topic }) {
  const list = usePoll((signal) => get('/api/dead-letters', { signal }), 5000);
  const rows = [...(list.data || [])].sort((a, b) => a.topic.localeCompare(b.topic));
  return html`<div data-testid="page-dead-letters">
    <div class="page-head"><h1>Dead letters</h1>
      <span class="muted">Records the events SDK gave up on, with why (herald.error) and where they came from.</span></div>
    ${list.error && html`<div class="error">${list.error}</div>`}
    <table class="grid" data-testid="dlq-table">
      <thead><tr><th>Dead-letter topic</th><th>Source topic</th><th class="r">Records</th><th class="r">Replayed</th><th></th></tr></thead>
      <tbody>
        ${list.data && rows.length === 0 && html`<tr><td colspan="5" class="muted">No *.dlq topics.</td></tr>`}
        ${rows.map(
          (d) => html`<tr key=${d.topic} data-testid="dlq-row" data-topic=${d.topic} class=${topic === d.topic ? 'chosen' : ''}>
            <td><${Link} href=${'/dead-letters/' + seg(d.topic)}>${d.topic}<//></td>
            <td><${Link} href=${'/topics/' + seg(d.source_topic)}>${d.source_topic}<//></td>
            <td class="r">${fmtNum(d.records)}</td>
            <td class="r">${fmtNum(d.replayed)}</td>
            <td class="r"><${Replay} topic=${d.topic} onDone=${list.reload} /></td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${topic
      ? html`<h2>${topic} <button class="link" onClick=${() => navigate('/dead-letters')}>close</button></h2><${DlqRecords} topic=${topic} />`
      : rows.length > 0 && html`<p class="muted">Choose a dead-letter topic to see its records.</p>`}
  </div>`;
}

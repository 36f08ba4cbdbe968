// Topics: the list (sizes, rates), create, delete; a topic's page with its
// partitions and offsets, configs (alter), the message browser and produce.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { get, post, patch, del, seg, errorText } from './api.js';
import { Link, navigate } from './router.js';
import { fmtBytes, fmtNum, fmtRate, usePoll } from './util.js';
import { MessageBrowser, ProduceForm } from './browser.js';

function parseConfigs(text) {
  const configs = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const i = line.indexOf('=');
    if (i <= 0) throw new Error(`Config line "${line}" is not "name=value".`);
    configs[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return configs;
}

function CreateTopic({ onCreated }) {
  const [open, setOpen] = useState(false);
  const [name, setName] = useState('');
  const [partitions, setPartitions] = useState('1');
  const [configs, setConfigs] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  if (!open) {
    return html`<button class="primary" data-testid="topic-create-open" onClick=${() => setOpen(true)}>Create topic</button>`;
  }
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    let cfg;
    try {
      cfg = parseConfigs(configs);
    } catch (err) {
      setError(err.message);
      return;
    }
    setBusy(true);
    try {
      await post('/api/topics', { name: name.trim(), partitions: Number(partitions), configs: cfg });
      setOpen(false);
      setName('');
      setConfigs('');
      onCreated(name.trim());
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="card create" onSubmit=${submit} data-testid="topic-create-form">
    <h3>Create topic</h3>
    <div class="row">
      <label class="grow">Name <input type="text" required data-testid="topic-name" value=${name} onInput=${(e) => setName(e.target.value)} /></label>
      <label>Partitions <input type="number" min="1" class="num" data-testid="topic-partitions" value=${partitions}
        onInput=${(e) => setPartitions(e.target.value)} /></label>
    </div>
    <label>Configs (one a line, <code>name=value</code>, e.g. <code>retention.ms=86400000</code>)
      <textarea rows="3" data-testid="topic-configs" spellcheck="false" value=${configs} onInput=${(e) => setConfigs(e.target.value)}></textarea>
    </label>
    <div class="row">
      <button type="submit" class="primary" data-testid="topic-create-submit" disabled=${busy}>Create</button>
      <button type="button" onClick=${() => setOpen(false)}>Cancel</button>
      ${error && html`<span class="error" data-testid="topic-create-error">${error}</span>`}
    </div>
  </form>`;
}

// A delete button that asks once more in place (no window.confirm).
export function ConfirmButton({ label, confirmLabel, onConfirm, testid }) {
  const [asking, setAsking] = useState(false);
  const [error, setError] = useState(null);
  if (!asking) {
    return html`<button class="danger" data-testid=${testid} onClick=${(e) => (e.stopPropagation(), setAsking(true))}>${label}</button>`;
  }
  const go = async (e) => {
    e.stopPropagation();
    setError(null);
    try {
      await onConfirm();
      setAsking(false);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return html`<span class="confirm">
    <button class="danger" data-testid=${testid + '-confirm'} onClick=${go}>${confirmLabel}</button>
    <button onClick=${(e) => (e.stopPropagation(), setAsking(false))}>Cancel</button>
    ${error && html`<span class="error">${error}</span>`}
  </span>`;
}

export function TopicsPage() {
  const [showInternal, setShowInternal] = useState(false);
  const [notice, setNotice] = useState(null);
  const topics = usePoll((signal) => get('/api/topics', { signal }), 5000);
  const list = (topics.data || []).filter((t) => showInternal || !t.internal).sort((a, b) => a.name.localeCompare(b.name));
  return html`<div data-testid="page-topics">
    <div class="page-head">
      <h1>Topics</h1>
      <label class="chk"><input type="checkbox" checked=${showInternal} onChange=${(e) => setShowInternal(e.target.checked)} /> internal topics</label>
      <${CreateTopic} onCreated=${(n) => (setNotice(`Created ${n}.`), topics.reload())} />
    </div>
    ${notice && html`<div class="ok" data-testid="topics-notice">${notice}</div>`}
    ${topics.error && html`<div class="error">${topics.error}</div>`}
    <table class="grid" data-testid="topics-table">
      <thead><tr><th>Name</th><th class="r">Partitions</th><th class="r">Records</th><th class="r">Size</th>
        <th class="r">In records/s</th><th class="r">In bytes/s</th><th></th></tr></thead>
      <tbody>
        ${topics.data && list.length === 0 && html`<tr><td colspan="7" class="muted">No topics yet.</td></tr>`}
        ${list.map(
          (t) => html`<tr key=${t.name} data-testid="topic-row" data-topic=${t.name}>
            <td><${Link} href=${'/topics/' + seg(t.name)}>${t.name}<//>
              ${t.internal && html` <span class="badge">internal</span>`}${t.dead_letter && html` <span class="badge warn">dead letters</span>`}</td>
            <td class="r">${t.partitions}</td>
            <td class="r">${fmtNum(t.records)}</td>
            <td class="r">${fmtBytes(t.size_bytes)}</td>
            <td class="r">${fmtRate(t.records_in_per_s)}</td>
            <td class="r">${fmtBytes(t.bytes_in_per_s)}/s</td>
            <td class="r">${!t.internal &&
            html`<${ConfirmButton} label="Delete" confirmLabel=${'Delete ' + t.name} testid="topic-delete"
              onConfirm=${async () => {
                await del(`/api/topics/${seg(t.name)}`);
                setNotice(`Deleted ${t.name}.`);
                topics.reload();
              }} />`}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

function ConfigRow({ topic, c, onChanged }) {
  const [editing, setEditing] = useState(false);
  const [value, setValue] = useState(c.value ?? '');
  const [error, setError] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await patch(`/api/topics/${seg(topic)}/configs`, { set: { [c.name]: value }, delete: [] });
      setEditing(false);
      onChanged();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const reset = async () => {
    setError(null);
    try {
      await patch(`/api/topics/${seg(topic)}/configs`, { set: {}, delete: [c.name] });
      onChanged();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const isTopicLevel = /topic/i.test(c.source || '');
  return html`<tr data-testid="config-row" data-config=${c.name}>
    <td class="mono">${c.name}</td>
    <td class="mono">${editing
      ? html`<form onSubmit=${save} class="inline"><input type="text" data-testid="config-value" value=${value}
          onInput=${(e) => setValue(e.target.value)} /><button type="submit" class="primary" data-testid="config-save">Save</button>
          <button type="button" onClick=${() => setEditing(false)}>Cancel</button></form>`
      : c.sensitive ? '(sensitive)' : c.value ?? html`<span class="muted">null</span>`}
      ${error && html`<div class="error">${error}</div>`}</td>
    <td class="muted">${c.source}</td>
    <td class="r">${!c.read_only && !editing && html`<button data-testid="config-edit" onClick=${() => (setValue(c.value ?? ''), setEditing(true))}>Edit</button>`}
      ${!c.read_only && isTopicLevel && html` <button data-testid="config-reset" onClick=${reset}>Reset</button>`}</td>
  </tr>`;
}

function AddConfig({ topic, onChanged }) {
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await patch(`/api/topics/${seg(topic)}/configs`, { set: { [name.trim()]: value }, delete: [] });
      setName('');
      setValue('');
      onChanged();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return html`<form class="row" onSubmit=${submit} data-testid="config-add">
    <input type="text" placeholder="config name" required value=${name} data-testid="config-add-name" onInput=${(e) => setName(e.target.value)} />
    <input type="text" placeholder="value" value=${value} data-testid="config-add-value" onInput=${(e) => setValue(e.target.value)} />
    <button type="submit" class="primary" data-testid="config-add-submit">Set</button>
    ${error && html`<span class="error" data-testid="config-error">${error}</span>`}
  </form>`;
}

export function TopicPage({ name, tab = 'messages' }) {
  const topic = usePoll((signal) => get(`/api/topics/${seg(name)}`, { signal }), 5000, [name]);
  const t = topic.data;
  const parts = t ? t.partitions.map((p) => p.partition).sort((a, b) => a - b) : [];
  const tabLink = (id, label) =>
    html`<${Link} href=${`/topics/${seg(name)}${id === 'messages' ? '' : '?tab=' + id}`} class=${tab === id ? 'tab active' : 'tab'}
      data-testid=${'topic-tab-' + id}>${label}<//>`;
  return html`<div data-testid="page-topic" data-topic=${name}>
    <div class="page-head">
      <h1><${Link} href="/topics">Topics<//> / <span data-testid="topic-title">${name}</span></h1>
      ${t && !t.internal &&
      html`<${ConfirmButton} label="Delete topic" confirmLabel=${'Delete ' + name} testid="topic-page-delete"
        onConfirm=${async () => {
          await del(`/api/topics/${seg(name)}`);
          navigate('/topics');
        }} />`}
    </div>
    ${topic.error && html`<div class="error" data-testid="topic-error">${topic.error}</div>`}
    <nav class="tabs">
      ${tabLink('messages', 'Messages')}${tabLink('partitions', 'Partitions')}${tabLink('configs', 'Configs')}${tabLink('produce', 'Produce')}
    </nav>
    ${t && tab === 'messages' && html`<${MessageBrowser} topic=${name} partitions=${parts} />`}
    ${t && tab === 'partitions' &&
    html`<table class="grid" data-testid="partitions-table">
      <thead><tr><th class="r">Partition</th><th class="r">Leader</th><th class="r">Log start offset</th><th class="r">High watermark</th><th class="r">Records</th></tr></thead>
      <tbody>${t.partitions.map(
        (p) => html`<tr data-testid="partition-row" data-partition=${p.partition}>
          <td class="r">${p.partition}</td><td class="r">${p.leader}</td><td class="r">${fmtNum(p.log_start_offset)}</td>
          <td class="r" data-testid="partition-hw">${fmtNum(p.high_watermark)}</td><td class="r">${fmtNum(p.high_watermark - p.log_start_offset)}</td></tr>`,
      )}</tbody>
    </table>`}
    ${t && tab === 'configs' &&
    html`<div>
      <${AddConfig} topic=${name} onChanged=${topic.reload} />
      <table class="grid" data-testid="configs-table">
        <thead><tr><th>Name</th><th>Value</th><th>Source</th><th></th></tr></thead>
        <tbody>${[...t.configs].sort((a, b) => a.name.localeCompare(b.name)).map(
          (c) => html`<${ConfigRow} key=${c.name + '=' + c.value} topic=${name} c=${c} onChanged=${topic.reload} />`,
        )}</tbody>
      </table>
    </div>`}
    ${t && tab === 'produce' && html`<${ProduceForm} topic=${name} partitions=${parts} />`}
  </div>`;
}

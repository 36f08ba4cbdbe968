// Consumer groups: the list (state, members, lag); a group's page with its
// members and assignments, lag per partition, offset reset (preview first,
// then apply) and delete.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { get, post, del, seg, errorText } from './api.js';
import { Link, navigate } from './router.js';
import { fmtNum, localToMs, usePoll } from './util.js';
import { ConfirmButton } from './topics.js';

export function GroupsPage() {
  const groups = usePoll((signal) => get('/api/groups', { signal }), 3000);
  const list = [...(groups.data || [])].sort((a, b) => a.group_id.localeCompare(b.group_id));
  return html`<div data-testid="page-groups">
    <div class="page-head"><h1>Consumer groups</h1></div>
    ${groups.error && html`<div class="error">${groups.error}</div>`}
    <table class="grid" data-testid="groups-table">
      <thead><tr><th>Group</th><th>State</th><th>Type</th><th class="r">Members</th><th class="r">Lag</th><th>Topics</th></tr></thead>
      <tbody>
        ${groups.data && list.length === 0 && html`<tr><td colspan="6" class="muted">No consumer groups.</td></tr>`}
        ${list.map(
          (g) => html`<tr key=${g.group_id} data-testid="group-row" data-group=${g.group_id}>
            <td><${Link} href=${'/groups/' + seg(g.group_id)}>${g.group_id}<//></td>
            <td><span class=${'state s-' + String(g.state).toLowerCase()}>${g.state}</span></td>
            <td>${g.type}${g.protocol_type ? ` (${g.protocol_type})` : ''}</td>
            <td class="r">${g.members}</td>
            <td class="r" data-testid="group-lag">${fmtNum(g.lag)}</td>
            <td>${(g.topics || []).map((t, i) => html`${i > 0 ? ', ' : ''}<${Link} href=${'/topics/' + seg(t)}>${t}<//>`)}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

function ResetOffsets({ group, topics, onApplied }) {
  const [topic, setTopic] = useState('');
  const [to, setTo] = useState('earliest');
  const [timestamp, setTimestamp] = useState('');
  const [offset, setOffset] = useState('0');
  const [preview, setPreview] = useState(null);
  const [applied, setApplied] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const body = (dryRun) => {
    const b = { topic: topic || null, to, dry_run: dryRun };
    if (to === 'timestamp') {
      const ms = localToMs(timestamp);
      if (ms == null) throw new Error('Enter a timestamp.');
      b.timestamp = ms;
    }
    if (to === 'offset') b.offset = Number(offset);
    return b;
  };
  const run = async (dryRun) => {
    setError(null);
    setBusy(true);
    try {
      const res = await post(`/api/groups/${seg(group)}/reset`, body(dryRun));
      if (dryRun) {
        setPreview({ res, key: JSON.stringify(body(true)) });
        setApplied(null);
      } else {
        setApplied(res);
        setPreview(null);
        onApplied();
      }
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  // "Apply" only applies what was previewed: changing the form asks for a new preview.
  let current = null;
  try {
    current = JSON.stringify(body(true));
  } catch {
    current = null;
  }
  const canApply = preview && preview.key === current && !busy;
  const table = (rows, testid) => html`<table class="grid" data-testid=${testid}>
    <thead><tr><th>Topic</th><th class="r">Partition</th><th class="r">Current</th><th class="r">New</th><th class="r">Lag after</th></tr></thead>
    <tbody>${rows.map(
      (o) => html`<tr data-testid="reset-row" data-topic=${o.topic} data-partition=${o.partition}>
        <td>${o.topic}</td><td class="r">${o.partition}</td><td class="r">${fmtNum(o.current)}</td>
        <td class="r" data-testid="reset-new">${fmtNum(o.new)}</td><td class="r">${fmtNum(o.lag_after)}</td></tr>`,
    )}</tbody></table>`;
  return html`<section class="card" data-testid="reset-form">
    <h3>Reset offsets</h3>
    <p class="muted">Only while the group has no members. Preview first; Apply commits exactly what the preview showed.</p>
    <div class="row">
      <label>Topic
        <select data-testid="reset-topic" value=${topic} onChange=${(e) => setTopic(e.target.value)}>
          <option value="">all the group's topics</option>
          ${topics.map((t) => html`<option value=${t}>${t}</option>`)}
        </select>
      </label>
      <label>To
        <select data-testid="reset-to" value=${to} onChange=${(e) => setTo(e.target.value)}>
          <option value="earliest">earliest</option>
          <option value="latest">latest</option>
          <option value="timestamp">timestamp</option>
          <option value="offset">offset</option>
        </select>
      </label>
      ${to === 'timestamp' && html`<label>Timestamp <input type="datetime-local" step="1" data-testid="reset-timestamp"
        value=${timestamp} onInput=${(e) => setTimestamp(e.target.value)} /></label>`}
      ${to === 'offset' && html`<label>Offset <input type="number" min="0" class="num" data-testid="reset-offset"
        value=${offset} onInput=${(e) => setOffset(e.target.value)} /></label>`}
      <button data-testid="reset-preview" disabled=${busy} onClick=${() => run(true)}>Preview</button>
      <button class="primary" data-testid="reset-apply" disabled=${!canApply} onClick=${() => run(false)}>Apply</button>
    </div>
    ${error && html`<div class="error" data-testid="reset-error">${error}</div>`}
    ${preview && html`<div><h4>Preview (dry run, nothing committed)</h4>${table(preview.res.offsets, 'reset-preview-table')}</div>`}
    ${applied && html`<div><h4 class="ok" data-testid="reset-applied">Applied: ${applied.offsets.length} partitions moved</h4>${table(applied.offsets, 'reset-applied-table')}</div>`}
  </section>`;
}

export function GroupPage({ id }) {
  const group = usePoll((signal) => get(`/api/groups/${seg(id)}`, { signal }), 3000, [id]);
  const g = group.data;
  // Topics it committed on or is assigned (a new group may have no commits yet).
  const topics = g
    ? [...new Set([...g.offsets.map((o) => o.topic), ...g.members.flatMap((m) => (m.assignment || []).map((a) => a.topic))])].sort()
    : [];
  return html`<div data-testid="page-group" data-group=${id}>
    <div class="page-head">
      <h1><${Link} href="/groups">Consumer groups<//> / <span data-testid="group-title">${id}</span></h1>
      <${ConfirmButton} label="Delete group" confirmLabel=${'Delete ' + id} testid="group-delete"
        onConfirm=${async () => {
          await del(`/api/groups/${seg(id)}`);
          navigate('/groups');
        }} />
    </div>
    ${group.error && html`<div class="error" data-testid="group-error">${group.error}</div>`}
    ${g && html`<div>
      <div class="stats">
        <div class="stat"><span>State</span><b data-testid="group-state">${g.state}</b></div>
        <div class="stat"><span>Type</span><b>${g.type}${g.protocol ? ` · ${g.protocol}` : ''}</b></div>
        <div class="stat"><span>Members</span><b>${g.members.length}</b></div>
        <div class="stat"><span>Total lag</span><b data-testid="group-total-lag">${fmtNum(g.lag)}</b></div>
      </div>
      <h2>Members</h2>
      <table class="grid" data-testid="members-table">
        <thead><tr><th>Client id</th><th>Host</th><th>Member id</th><th>Assignment</th></tr></thead>
        <tbody>
          ${g.members.length === 0 && html`<tr><td colspan="4" class="muted">No members (the group is empty).</td></tr>`}
          ${g.members.map(
            (m) => html`<tr data-testid="member-row"><td>${m.client_id}</td><td>${m.client_host}</td><td class="mono small">${m.member_id}</td>
              <td>${(m.assignment || []).map((a) => html`<div>${a.topic}: ${a.partitions.join(', ')}</div>`)}</td></tr>`,
          )}
        </tbody>
      </table>
      <h2>Lag per partition</h2>
      <table class="grid" data-testid="offsets-table">
        <thead><tr><th>Topic</th><th class="r">Partition</th><th class="r">Committed</th><th class="r">High watermark</th><th class="r">Lag</th></tr></thead>
        <tbody>
          ${g.offsets.length === 0 && html`<tr><td colspan="5" class="muted">No committed offsets.</td></tr>`}
          ${[...g.offsets]
            .sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition)
            .map(
              (o) => html`<tr data-testid="offset-row" data-topic=${o.topic} data-partition=${o.partition}
                  data-committed=${o.committed} data-lag=${o.lag}>
                <td><${Link} href=${'/topics/' + seg(o.topic)}>${o.topic}<//></td><td class="r">${o.partition}</td>
                <td class="r" data-testid="offset-committed">${fmtNum(o.committed)}</td><td class="r">${fmtNum(o.high_watermark)}</td>
                <td class="r" data-testid="offset-lag">${fmtNum(o.lag)}</td></tr>`,
            )}
        </tbody>
      </table>
      <${ResetOffsets} group=${id} topics=${topics} onApplied=${group.reload} />
    </div>`}
  </div>`;
}

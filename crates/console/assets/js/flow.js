// Event flow: what the broker observed in the last minute, drawn as SVG in
// three columns, producers | topics | consumer groups. Edges carry records/s,
// groups their lag; clicking a topic or group opens it, a producer opens a
// small panel (client id, principal, transactional id).
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { get, seg } from './api.js';
import { navigate } from './router.js';
import { fmtNum, fmtRate, usePoll } from './util.js';

const VIEW_W = 1200;
const NODE_W = 250;
const NODE_H = 42;
const ROW_H = 56;
const TOP = 44;
const COL_X = { producer: 16, topic: (VIEW_W - NODE_W) / 2, group: VIEW_W - NODE_W - 16 };
const COL_TITLE = { producer: 'Producers', topic: 'Topics', group: 'Consumer groups' };

function clip(s, n = 30) {
  s = s == null ? '' : String(s);
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

function subtitle(n) {
  if (n.kind === 'producer') {
    const who = n.principal || '';
    return n.transactional_id ? `${who} · txn ${n.transactional_id}` : who;
  }
  if (n.kind === 'group') return `lag ${fmtNum(n.lag ?? 0)}${n.state ? ' · ' + n.state : ''}`;
  return '';
}

// Topics in name order; producers and groups each sorted by the mean row of
// the topics they touch (a barycenter pass), which keeps most edges short
// and uncrossed without a layout library.
export function layout(flow) {
  const cols = { producer: [], topic: [], group: [] };
  for (const n of flow.nodes) if (cols[n.kind]) cols[n.kind].push(n);
  const byName = (a, b) => String(a.label).localeCompare(String(b.label));
  cols.topic.sort(byName);
  const topicRow = new Map(cols.topic.map((n, i) => [n.id, i]));
  const centre = (id) => {
    const rows = [];
    for (const e of flow.edges) {
      if (e.from === id && topicRow.has(e.to)) rows.push(topicRow.get(e.to));
      if (e.to === id && topicRow.has(e.from)) rows.push(topicRow.get(e.from));
    }
    return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Infinity;
  };
  for (const kind of ['producer', 'group']) {
    const c = new Map(cols[kind].map((n) => [n.id, centre(n.id)]));
    cols[kind].sort((a, b) => c.get(a.id) - c.get(b.id) || byName(a, b));
  }
  const pos = new Map();
  for (const kind of Object.keys(cols)) {
    cols[kind].forEach((n, i) => pos.set(n.id, { x: COL_X[kind], y: TOP + i * ROW_H, n }));
  }
  const rows = Math.max(1, cols.producer.length, cols.topic.length, cols.group.length);
  return { pos, height: TOP + rows * ROW_H + 10 };
}

function bezierAt(t, x0, y0, x1, y1, x2, y2, x3, y3) {
  const u = 1 - t;
  const a = u * u * u;
  const b = 3 * u * u * t;
  const c = 3 * u * t * t;
  const d = t * t * t;
  return [a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3];
}

function open(n, setPanel) {
  if (n.kind === 'topic') navigate('/topics/' + seg(n.label));
  else if (n.kind === 'group') navigate('/groups/' + seg(n.label));
  else setPanel(n.id);
}

export function FlowPage() {
  const flow = usePoll((signal) => get('/api/flow', { signal }), 2000);
  const [panel, setPanel] = useState(null);
  const f = flow.data;
  if (!f) {
    return html`<div data-testid="page-flow"><div class="page-head"><h1>Event flow</h1></div>
      ${flow.error ? html`<div class="error">${flow.error}</div>` : html`<p class="muted">Loading…</p>`}</div>`;
  }
  const { pos, height } = layout(f);
  const edges = f.edges.filter((e) => pos.has(e.from) && pos.has(e.to));
  const maxRate = Math.max(1, ...edges.map((e) => e.records_per_s || 0));
  const chosen = panel && pos.get(panel) ? pos.get(panel).n : null;
  return html`<div data-testid="page-flow">
    <div class="page-head">
      <h1>Event flow</h1>
      <span class="muted">What the broker saw in the last ${f.window_seconds} s: ${f.nodes.length} nodes, ${edges.length} edges. Refreshes every 2 s.</span>
    </div>
    ${flow.error && html`<div class="error">${flow.error}</div>`}
    ${f.truncated && html`<p class="warn">The graph is cut at the API's node limit.</p>`}
    ${f.nodes.length === 0 && html`<p class="muted" data-testid="flow-empty">No traffic in the window yet: produce or consume to see the graph.</p>`}
    ${chosen &&
    html`<aside class="card panel" data-testid="producer-panel">
      <button class="close" onClick=${() => setPanel(null)} title="close">×</button>
      <h3>Producer ${chosen.label}</h3>
      <table class="kv">
        <tr><th>Client id</th><td data-testid="producer-client-id">${chosen.client_id ?? '–'}</td></tr>
        <tr><th>Principal</th><td data-testid="producer-principal">${chosen.principal ?? '–'}</td></tr>
        <tr><th>Transactional id</th><td>${chosen.transactional_id ?? '–'}</td></tr>
      </table>
      <h4>Produces to</h4>
      <ul>${edges.filter((e) => e.from === chosen.id).map((e) => {
        const t = pos.get(e.to).n;
        return html`<li><a href=${'/topics/' + seg(t.label)} onClick=${(ev) => (ev.preventDefault(), navigate('/topics/' + seg(t.label)))}>${t.label}</a>${' · '}${fmtRate(e.records_per_s)} records/s</li>`;
      })}</ul>
    </aside>`}
    <div class="flow-wrap">
      <svg class="flow" data-testid="flow-svg" viewBox=${`0 0 ${VIEW_W} ${height}`} width="100%" preserveAspectRatio="xMidYMin meet">
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
          </marker>
        </defs>
        ${Object.keys(COL_X).map((k) => html`<text class="col-title" x=${COL_X[k] + NODE_W / 2} y="22" text-anchor="middle">${COL_TITLE[k]}</text>`)}
        ${edges.map((e) => {
          const a = pos.get(e.from);
          const b = pos.get(e.to);
          const x1 = a.x + NODE_W;
          const y1 = a.y + NODE_H / 2;
          const x2 = b.x;
          const y2 = b.y + NODE_H / 2;
          const dx = Math.max(60, (x2 - x1) / 2);
          const w = 1.5 + 4 * Math.sqrt((e.records_per_s || 0) / maxRate);
          const hot = panel && (e.from === panel || e.to === panel);
          const label = `${fmtRate(e.records_per_s)}/s${e.lag != null ? ` · lag ${fmtNum(e.lag)}` : ''}`;
          // Idle edges (no rate, no lag) keep their label in the tooltip, so
          // the live ones stay readable.
          const busy = (e.records_per_s || 0) > 0 || (e.lag || 0) > 0;
          // The rate sits at 70% of the curve, near its target, so the labels
          // of edges that leave one node do not pile up on each other.
          const [lx, ly] = bezierAt(0.7, x1, y1, x1 + dx, y1, x2 - dx, y2, x2, y2);
          return html`<g class=${'edge' + (hot ? ' hot' : '')} data-testid="flow-edge" data-from=${e.from} data-to=${e.to}
              data-from-label=${a.n.label} data-to-label=${b.n.label}>
            <path d=${`M ${x1} ${y1} C ${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2} ${y2}`} stroke-width=${w} marker-end="url(#arrow)" />
            <title>${a.n.label} → ${b.n.label}: ${label}</title>
            ${(busy || hot) && html`<text x=${lx} y=${ly - 4} text-anchor="middle" class="edge-label" data-testid="flow-edge-label">${label}</text>`}
          </g>`;
        })}
        ${[...pos.values()].map(({ x, y, n }) => {
          const sub = subtitle(n);
          return html`<g class=${`node ${n.kind}${panel === n.id ? ' chosen' : ''}`} data-testid="flow-node" data-kind=${n.kind}
              data-label=${n.label} data-id=${n.id} transform=${`translate(${x} ${y})`} onClick=${() => open(n, setPanel)}>
            <title>${n.kind}: ${n.label}${sub ? ' (' + sub + ')' : ''}</title>
            <rect width=${NODE_W} height=${NODE_H} rx="6" />
            <text x="10" y=${sub ? 17 : 26} class="node-label">${clip(n.label)}</text>
            ${sub && html`<text x="10" y="33" class="node-sub">${clip(sub, 38)}</text>`}
          </g>`;
        })}
      </svg>
    </div>
  </div>`;
}

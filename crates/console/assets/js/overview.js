// Overview: live throughput in and out (uPlot, polled every second), topic,
// partition and broker counts, disk use.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { get } from './api.js';
import { fmtBytes, fmtNum, fmtRate, usePoll } from './util.js';

function LiveChart({ title, data, fmt, testid }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const el = box.current;
    const opts = {
      width: Math.max(300, el.clientWidth),
      height: 220,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{}, { size: 96, values: (u, vals) => vals.map((v) => fmt(v)) }],
      series: [
        {},
        { label: 'in', stroke: '#1f7a4d', fill: 'rgba(31,122,77,0.08)', width: 2, value: (u, v) => (v == null ? '–' : fmt(v)) },
        { label: 'out', stroke: '#2b5fb3', width: 2, value: (u, v) => (v == null ? '–' : fmt(v)) },
      ],
    };
    plot.current = new uPlot(opts, [[], [], []], el);
    const ro = new ResizeObserver(() => plot.current && plot.current.setSize({ width: Math.max(300, el.clientWidth), height: 220 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current.destroy();
      plot.current = null;
    };
  }, []);
  useEffect(() => {
    if (plot.current && data) plot.current.setData(data);
  }, [data]);
  return html`<section class="card chart" data-testid=${testid}><h3>${title}</h3><div ref=${box}></div></section>`;
}

export function OverviewPage() {
  const ov = usePoll((signal) => get('/api/overview', { signal }), 1000);
  const info = usePoll((signal) => get('/api/info', { signal }), 0);
  const o = ov.data;
  const s = (o && o.series) || [];
  const t = s.map((p) => p.t / 1000);
  const bytes = o ? [t, s.map((p) => p.bytes_in), s.map((p) => p.bytes_out)] : null;
  const records = o ? [t, s.map((p) => p.records_in), s.map((p) => p.records_out)] : null;
  const last = s.length ? s[s.length - 1] : null;
  return html`<div data-testid="page-overview">
    <div class="page-head">
      <h1>Overview</h1>
      ${info.data && html`<span class="muted">Herald ${info.data.version} · cluster ${info.data.cluster_id} · node ${info.data.node_id} · ${info.data.engine} engine</span>`}
    </div>
    ${ov.error && html`<div class="error">${ov.error}</div>`}
    <div class="stats">
      <div class="stat"><span>Topics</span><b data-testid="ov-topics">${o ? fmtNum(o.topics) : '–'}</b></div>
      <div class="stat"><span>Partitions</span><b data-testid="ov-partitions">${o ? fmtNum(o.partitions) : '–'}</b></div>
      <div class="stat"><span>Disk use</span><b data-testid="ov-disk">${o ? fmtBytes(o.disk_bytes) : '–'}</b></div>
      <div class="stat"><span>Brokers</span><b data-testid="ov-brokers">${o ? o.brokers.length : '–'}</b></div>
      <div class="stat"><span>In now</span><b>${last ? fmtRate(last.records_in) + ' rec/s' : '–'}</b></div>
      <div class="stat"><span>Out now</span><b>${last ? fmtRate(last.records_out) + ' rec/s' : '–'}</b></div>
    </div>
    <div class="charts">
      <${LiveChart} title="Throughput, bytes/s" data=${bytes} fmt=${(v) => fmtBytes(v) + '/s'} testid="chart-bytes" />
      <${LiveChart} title="Throughput, records/s" data=${records} fmt=${(v) => fmtRate(v)} testid="chart-records" />
    </div>
    ${o && o.brokers.length > 0 &&
    html`<table class="grid narrow"><thead><tr><th>Node</th><th>Host</th><th class="r">Port</th></tr></thead>
      <tbody>${o.brokers.map((b) => html`<tr><td>${b.node_id}</td><td>${b.host}</td><td class="r">${b.port}</td></tr>`)}</tbody></table>`}
  </div>`;
}

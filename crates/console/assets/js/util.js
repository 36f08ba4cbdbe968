// Formatting helpers and the polling hook every live page uses.
import { useEffect, useRef, useState } from 'preact/hooks';
import { errorText } from './api.js';

export function fmtBytes(n) {
  if (n == null || Number.isNaN(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function fmtNum(n) {
  if (n == null || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US');
}

export function fmtRate(n) {
  if (n == null || Number.isNaN(n)) return '–';
  const v = Number(n);
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, '') || '0';
}

export function fmtTime(ms) {
  if (ms == null || ms < 0) return '–';
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) return String(ms);
  const p = (x, w = 2) => String(x).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// Calls `load(signal)` now and every `everyMs`; returns {data, error, reload}.
// A slow answer is not overlapped by the next poll, and leaving the page
// aborts the request in flight.
export function usePoll(load, everyMs, deps = []) {
  const [state, setState] = useState({ data: null, error: null });
  const tick = useRef(null);
  useEffect(() => {
    let stopped = false;
    let timer = null;
    let ctl = null;
    const run = async () => {
      clearTimeout(timer);
      ctl = new AbortController();
      try {
        const data = await load(ctl.signal);
        if (!stopped) setState({ data, error: null });
      } catch (e) {
        if (!stopped && e.name !== 'AbortError') setState((s) => ({ data: s.data, error: errorText(e) }));
      }
      if (!stopped && everyMs) timer = setTimeout(run, everyMs);
    };
    tick.current = run;
    run();
    return () => {
      stopped = true;
      clearTimeout(timer);
      if (ctl) ctl.abort();
    };
  }, deps);
  return { ...state, reload: () => tick.current && tick.current() };
}

// base64 → bytes; text → UTF-8 bytes.
export function b64Bytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function textBytes(s) {
  return new TextEncoder().encode(s);
}

// datetime-local input value → epoch ms (local time), or null.
export function localToMs(v) {
  if (!v) return null;
  const t = new Date(v).getTime();
  return Number.isNaN(t) ? null : t;
}

// How a record's bytes are shown: JSON pretty and highlighted, text, or hex.
// Everything is built as DOM nodes (preact text children), never as HTML
// strings, so a record cannot inject markup (XSS).
import { html } from 'htm/preact';
import { b64Bytes, textBytes } from './util.js';

// Re-indents the record's own JSON text token by token instead of
// JSON.stringify(JSON.parse(...)), so numbers beyond 2^53 keep their digits.
const TOKEN = /\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|[{}[\],:])/y;
const CLOSE_NEXT = /\s*[}\]]/y;
const COLON_NEXT = /\s*:/y;

export function isJson(text) {
  if (text == null) return false;
  const t = text.trim();
  if (!(t.startsWith('{') || t.startsWith('['))) return false;
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false;
  }
}

export function prettyJsonNodes(text) {
  const out = [];
  let depth = 0;
  const nl = () => '\n' + '  '.repeat(depth);
  TOKEN.lastIndex = 0;
  let m;
  while (TOKEN.lastIndex < text.length && (m = TOKEN.exec(text)) !== null) {
    const t = m[1];
    const at = TOKEN.lastIndex;
    if (t === '{' || t === '[') {
      CLOSE_NEXT.lastIndex = at;
      const close = CLOSE_NEXT.exec(text);
      if (close) {
        out.push(html`<span class="j-punct">${t}${close[0].trim()}</span>`);
        TOKEN.lastIndex = CLOSE_NEXT.lastIndex;
      } else {
        depth++;
        out.push(html`<span class="j-punct">${t}</span>`, nl());
      }
    } else if (t === '}' || t === ']') {
      depth = Math.max(0, depth - 1);
      out.push(nl(), html`<span class="j-punct">${t}</span>`);
    } else if (t === ',') {
      out.push(html`<span class="j-punct">,</span>`, nl());
    } else if (t === ':') {
      out.push(html`<span class="j-punct">: </span>`);
    } else if (t[0] === '"') {
      COLON_NEXT.lastIndex = at;
      const cls = COLON_NEXT.test(text) ? 'j-key' : 'j-str';
      out.push(html`<span class=${cls}>${t}</span>`);
    } else if (t === 'true' || t === 'false') {
      out.push(html`<span class="j-bool">${t}</span>`);
    } else if (t === 'null') {
      out.push(html`<span class="j-null">${t}</span>`);
    } else {
      out.push(html`<span class="j-num">${t}</span>`);
    }
  }
  return out;
}

export function hexDump(bytes, max = 64 * 1024) {
  const lines = [];
  const n = Math.min(bytes.length, max);
  for (let off = 0; off < n; off += 16) {
    const row = bytes.subarray(off, Math.min(off + 16, n));
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex.padEnd(47, ' ')}  ${ascii}`);
  }
  if (bytes.length > n) lines.push(`… ${bytes.length - n} more bytes`);
  return lines.join('\n');
}

export function bytesOf(text, b64) {
  if (b64 != null) return b64Bytes(b64);
  if (text != null) return textBytes(text);
  return new Uint8Array(0);
}

export function defaultMode(text, b64) {
  if (isJson(text)) return 'json';
  if (text != null) return 'text';
  if (b64 != null) return 'hex';
  return 'text';
}

// One value (a key or a record value) in the chosen mode.
export function ValueView({ text, b64, mode, testid }) {
  if (text == null && b64 == null) return html`<pre class="value null" data-testid=${testid}>null</pre>`;
  if (mode === 'json' && isJson(text)) {
    return html`<pre class="value json" data-testid=${testid} data-mode="json">${prettyJsonNodes(text.trim())}</pre>`;
  }
  if (mode === 'hex' || text == null) {
    return html`<pre class="value hex" data-testid=${testid} data-mode="hex">${hexDump(bytesOf(text, b64))}</pre>`;
  }
  return html`<pre class="value text" data-testid=${testid} data-mode="text">${text}</pre>`;
}

export function preview(text, b64, n = 120) {
  if (text != null) {
    const flat = text.replace(/\s+/g, ' ');
    return flat.length > n ? flat.slice(0, n) + '…' : flat;
  }
  if (b64 != null) return `(${b64Bytes(b64).length} bytes binary)`;
  return 'null';
}

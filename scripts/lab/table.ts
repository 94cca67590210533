// The lab's output: numbers written for people, and the table with each
// row followed by its explanation.
import type { LabRow } from './experiment';

export function n0(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

export function n1(x: number): string {
  return x.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
}

export function n2(x: number): string {
  return x.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

export function pct(x: number): string {
  return x > 0 && x < 0.1 ? `${n1(x * 100)}%` : `${Math.round(x * 100)}%`;
}

/** "1 read", "3 reads" */
export function plural(n: number, word: string): string {
  return `${n0(n)} ${word}${Math.round(n) === 1 ? '' : 's'}`;
}

export function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
}

export function settingsText(row: Pick<LabRow, 'settings' | 'subject'>): string {
  if (row.subject !== undefined) return row.subject;
  const entries = Object.entries(row.settings);
  return entries.length === 0 ? 'defaults' : entries.map(([k, v]) => `${k}=${typeof v === 'string' ? v : String(v)}`).join(' ');
}

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(indent + line);
  return lines.join('\n');
}

/** The results as a fixed-width table, each row followed by its explanation. */
export function formatTable(rows: LabRow[]): string {
  const head = ['#', 'experiment', 'mode', 'rsp settings (besides triggerMode)', 'result'];
  const cells = rows.map((r) => [r.label, r.title, r.mode, settingsText(r), r.result]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const fmt = (c: string[]): string => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]))).join('  ');
  const out = [fmt(head), widths.map((w) => '-'.repeat(w)).join('  ')];
  rows.forEach((r, i) => {
    out.push(fmt(cells[i]));
    out.push(wrap(r.explanation, 100, '      '));
    out.push('');
  });
  return out.join('\n');
}

export const PRIMER = [
  'How to read this. rsp waits for its sockets with epoll: it registers each socket once, then calls',
  'epoll_wait(), which sleeps until one or more sockets are ready and returns a list of "events" (this',
  'socket has bytes to read: EPOLLIN; this one has room to write: EPOLLOUT; the other side finished',
  'sending: EPOLLRDHUP). Level-triggered (the default) means epoll_wait reports a socket every time it',
  'is called for as long as the socket is ready, like a light that stays on. Edge-triggered means it',
  'reports a socket once when something changes (new bytes arrive), like a doorbell: the program must',
  'then read until the socket is empty (a read returns fewer bytes than asked, or the kernel answers',
  'EAGAIN, "nothing more for now"), or it will not be told again about the bytes it left behind.',
  'A short read means "empty" on a stream socket with one exception: TCP urgent data, where read()',
  'stops at the urgent mark (experiment 7). EPOLLRDHUP means the other side finished sending, or a',
  'reset (which also raises EPOLLERR), or a local shutdown(SHUT_RD).',
  'The figures come from rsp\'s own counters (counters: lines printed on SIGUSR2 and on exit).',
].join('\n');

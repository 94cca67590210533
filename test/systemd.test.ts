// examples/rsp.service passes `systemd-analyze verify` with no complaint
// about its own directives. The copy verified runs this checkout's bin/rsp
// with this node (verify checks that ExecStart's program exists).
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, RSP, tempFile } from './helpers';

const UNIT = path.join(ROOT, 'examples', 'rsp.service');
const hasAnalyze = spawnSync('systemd-analyze', ['--version'], { timeout: 10000 }).status === 0;
const withAnalyze = hasAnalyze ? test : (title: string) => test.skip(`${title} (skipped: systemd-analyze is not installed)`, () => {});

/** The unit's text with its node and bin/rsp paths pointed at this machine's. */
function localCopy(): string {
  const text = fs.readFileSync(UNIT, 'utf8');
  const installed = '/usr/bin/node /opt/rsp/bin/rsp';
  if (!text.includes(`ExecStart=${installed} `)) throw new Error(`examples/rsp.service: ExecStart is no longer "${installed} ...": update this test`);
  return text.split(installed).join(`${process.execPath} ${RSP}`);
}

/** `systemd-analyze verify` of `text` as rsp.service: everything it printed. */
function verify(t: ExecutionContext, text: string): { status: number | null; output: string } {
  const file = tempFile(t, 'rsp.service', text);
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8', timeout: 60000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

withAnalyze('examples/rsp.service: systemd-analyze verify has nothing to say about it', (t) => {
  const r = verify(t, localCopy());
  t.is(r.status, 0, r.output);
  t.is(r.output, '');
});

withAnalyze('systemd-analyze verify does report a bad directive (the check above can fail)', (t) => {
  const r = verify(t, localCopy().replace('KillSignal=SIGTERM', 'KillSignal=SIGNOPE\nNoSuchDirective=yes'));
  t.regex(r.output, /rsp\.service:\d+: Unknown key 'NoSuchDirective'/);
  t.regex(r.output, /SIGNOPE/);
});

test('examples/rsp.service has what the README promises', (t) => {
  const text = fs.readFileSync(UNIT, 'utf8');
  const directives = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (m !== null) directives.set(m[1], m[2]);
  }
  t.regex(directives.get('ExecStart') ?? '', /^\/usr\/bin\/node \S+\/bin\/rsp \S+\.lua$/); // node itself, not npx/npm
  t.is(directives.get('ExecReload'), '/bin/kill -HUP $MAINPID');
  t.is(directives.get('KillSignal'), 'SIGTERM');
  // Above the default drainTimeout (30000 ms).
  t.true(Number(/^(\d+)s$/.exec(directives.get('TimeoutStopSec') ?? '')?.[1]) * 1000 > 30000);
  t.is(directives.get('Restart'), 'on-failure');
  t.regex(directives.get('LimitNOFILE') ?? '', /^\d+$/);
  t.is(directives.get('User'), 'rsp');
  t.is(directives.get('AmbientCapabilities'), 'CAP_NET_BIND_SERVICE');
  t.is(directives.get('NoNewPrivileges'), 'yes');
  t.is(directives.get('ProtectSystem'), 'strict');
  // V8's JIT needs pages that are writable and executable.
  t.false(directives.has('MemoryDenyWriteExecute'));
});

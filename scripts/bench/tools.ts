// Which measuring tools and peers are installed here, and their versions for the report.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Options } from './options';

export interface Tools {
  wrk: boolean;
  ab: boolean;
  nginx: boolean;
  /** load_module line for the stream module, '' if built in, null if unavailable. */
  nginxStream: string | null;
  /** nginx http modules that exist and want a temp path of their own. */
  nginxTempModules: string[];
  nginxStubStatus: boolean;
  haproxy: boolean;
  perf: boolean;
  perfNote: string;
  strace: boolean;
  curl: boolean;
  autocannon: AutocannonFn | null;
  versions: string[];
}

export type AutocannonFn = (opts: { url: string; connections: number; duration: number; headers?: Record<string, string> }) => Promise<{
  requests: { total: number; average: number };
  latency: { p50: number; p99: number };
  duration: number;
  errors: number;
  non2xx: number;
}>;

function installed(name: string, options: Options): boolean {
  if (options.without.has(name)) return false;
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

function firstLine(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? '?';
}

export function detectTools(options: Options): Tools {
  const tools: Tools = {
    wrk: installed('wrk', options),
    ab: installed('ab', options),
    nginx: installed('nginx', options),
    nginxStream: null,
    nginxTempModules: [],
    nginxStubStatus: false,
    haproxy: installed('haproxy', options),
    perf: false,
    perfNote: 'perf not installed',
    strace: installed('strace', options),
    curl: installed('curl', options),
    autocannon: null,
    versions: [],
  };
  if (tools.nginx) {
    const v = spawnSync('nginx', ['-V'], { encoding: 'utf8' });
    const text = `${v.stdout}${v.stderr}`;
    const modulesPath = /--modules-path=(\S+)/.exec(text)?.[1] ?? '/usr/lib/nginx/modules';
    const so = path.join(modulesPath, 'ngx_stream_module.so');
    if (/--with-stream(\s|$)/.test(text)) tools.nginxStream = '';
    else if (fs.existsSync(so)) tools.nginxStream = `load_module ${so};`;
    else if (fs.existsSync('/usr/lib/nginx/modules/ngx_stream_module.so')) tools.nginxStream = 'load_module /usr/lib/nginx/modules/ngx_stream_module.so;';
    for (const m of ['fastcgi', 'uwsgi', 'scgi']) if (!text.includes(`--without-http_${m}_module`)) tools.nginxTempModules.push(m);
    tools.nginxStubStatus = text.includes('--with-http_stub_status_module');
    tools.versions.push(firstLine('nginx', ['-v']) + (tools.nginxStream === null ? ' (no stream module)' : ' (stream module available)'));
  }
  if (installed('perf', options)) {
    const r = spawnSync('perf', ['stat', '-x', ',', '-e', 'raw_syscalls:sys_enter', 'true'], { encoding: 'utf8', timeout: 10000 });
    const paranoid = (() => {
      try {
        return fs.readFileSync('/proc/sys/kernel/perf_event_paranoid', 'utf8').trim();
      } catch {
        return '?';
      }
    })();
    tools.perf = r.status === 0 && /^\d+,/m.test(r.stderr ?? '');
    tools.perfNote = tools.perf ? '' : `perf stat -e raw_syscalls:sys_enter does not work here (perf_event_paranoid=${paranoid}): ${(r.stderr ?? '').trim().split('\n')[0]}`;
    tools.versions.push(firstLine('perf', ['--version']));
  }
  if (!options.without.has('autocannon')) {
    try {
      tools.autocannon = require('autocannon') as AutocannonFn;
    } catch {
      tools.autocannon = null;
    }
  }
  if (tools.wrk) tools.versions.push(firstLine('wrk', ['-v']).replace(/ Copyright.*/, ''));
  if (tools.ab) tools.versions.push(firstLine('ab', ['-V']).replace(/^This is /, ''));
  if (tools.haproxy) tools.versions.push(firstLine('haproxy', ['-v']).replace(/ - https?:.*/, ''));
  if (tools.strace) tools.versions.push(firstLine('strace', ['-V']));
  if (tools.curl) tools.versions.push(firstLine('curl', ['--version']).split(' ').slice(0, 2).join(' '));
  if (tools.autocannon) tools.versions.push('autocannon (node module)');
  return tools;
}

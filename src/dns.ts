// Backends that follow DNS. A member given by name ("app.internal:8080")
// becomes one member per A and AAAA record of that name, named
// "app.internal:8080 (10.0.0.5)" so that logs tell the name from the address.
// Every resolveInterval ms the main thread resolves each name again and
// posts what joined and what left to the worker: the worker's reactor blocks
// in epoll_wait and its own event loop never turns, so it cannot wait for a
// DNS answer itself. This is how a pool follows a Kubernetes headless
// Service or a Consul service (nginx's `resolve`, HAProxy's server-template).
//
// A failing lookup (timeout, SERVFAIL, NXDOMAIN, no address) keeps the last
// good answer: a DNS outage must not empty a pool whose backends are fine.
// One line when a name starts failing, one when it resolves again.
// Members given as IP addresses are never resolved.
import { lookup, Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { ConfigError } from './configcheck';
import { log, logError } from './log';
import type { MemberConfig, PoolConfig } from './pools';

/** A member given by name, and the addresses its members have now. */
export interface NamedMember {
  pool: string;
  /** As written, "app.internal:8080" ("08080" stays as written). */
  name: string;
  /** The name to resolve. */
  host: string;
  port: number;
  weight: number;
  backup: boolean;
  maxConnections: number;
  /** How messages call it: "backends.app member" or "backendAddress". */
  option: string;
  /** Sorted; never empty (a failed lookup keeps the last answer). */
  addresses: string[];
}

/** What the worker does to one pool: `add` join it, the members named in `remove` leave it. */
export interface MemberChange {
  pool: string;
  add: MemberConfig[];
  remove: string[];
}

/** The addresses a name had, or none and why ('' when every family answered). */
export interface Answer {
  addresses: string[];
  error: string;
}

/** "app.internal:8080 (10.0.0.5)" */
export function memberName(written: string, address: string): string {
  return `${written} (${address})`;
}

function memberOf(n: NamedMember, address: string): MemberConfig {
  return { name: memberName(n.name, address), host: n.host, port: n.port, address, weight: n.weight, backup: n.backup, maxConnections: n.maxConnections };
}

/** Answers that mean "this name has no such address", not "DNS did not answer". */
const NO_ADDRESS = new Set(['ENODATA', 'ENOTFOUND']);

const WORDS: Record<string, string> = {
  ETIMEOUT: 'no answer in time',
  ESERVFAIL: 'SERVFAIL',
  ENOTFOUND: 'no such name (NXDOMAIN)',
  ENODATA: 'no A or AAAA record',
  ECONNREFUSED: 'DNS server refused',
  EREFUSED: 'query refused',
};

function describeError(code: string): string {
  const [family, name] = code.includes(' ') ? code.split(' ') : ['', code];
  const words = WORDS[name] !== undefined ? `${WORDS[name]}, ${name}` : name;
  return family === '' ? words : `${family}: ${words}`;
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
}

/**
 * Resolves names to all their addresses, by the DNS server a config names
 * (c-ares, both families asked at once) or by the system's resolver
 * (getaddrinfo, /etc/hosts included). Never rejects: failures are answers.
 */
export class NameResolver {
  private readonly resolver: Resolver | undefined;
  /** getaddrinfo cannot be cancelled: one call per name at a time, however long it hangs. */
  private readonly pending = new Map<string, Promise<Answer>>();

  /** `server`: "" for the system resolver, or "address[:port]"; `timeoutMs`: for one try (c-ares tries twice, waiting longer the second time). */
  constructor(server: string, private readonly timeoutMs: number) {
    if (server !== '') {
      this.resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
      this.resolver.setServers([server]);
    }
  }

  resolve(host: string): Promise<Answer> {
    return this.resolver === undefined ? this.system(host) : this.server(this.resolver, host);
  }

  private async server(resolver: Resolver, host: string): Promise<Answer> {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
    const addresses: string[] = [];
    const none: string[] = [];
    let error = '';
    for (const [family, result] of [['A', v4], ['AAAA', v6]] as const) {
      if (result.status === 'fulfilled') {
        addresses.push(...result.value);
      } else {
        const code = codeOf(result.reason);
        if (NO_ADDRESS.has(code)) none.push(code);
        else if (error === '') error = `${family} ${code}`;
      }
    }
    if (addresses.length === 0 && error === '') error = none.includes('ENOTFOUND') ? 'ENOTFOUND' : 'ENODATA';
    return { addresses: sorted(addresses), error };
  }

  private system(host: string): Promise<Answer> {
    let answer = this.pending.get(host);
    if (answer === undefined) {
      answer = lookup(host, { all: true }).then(
        (list) => ({ addresses: sorted(list.map((a) => a.address)), error: '' }),
        (error: unknown) => ({ addresses: [], error: codeOf(error) }),
      ).finally(() => this.pending.delete(host));
      this.pending.set(host, answer);
    }
    // Bounded: a lookup still running after a try and a half of c-ares's time gives up here.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<Answer>((resolve) => {
      timer = setTimeout(() => resolve({ addresses: [], error: 'ETIMEOUT' }), this.timeoutMs * 3);
    });
    return Promise.race([answer, late]).finally(() => clearTimeout(timer));
  }
}

function sorted(addresses: string[]): string[] {
  return [...new Set(addresses)].sort();
}

/**
 * At start-up: every member given by name becomes one member per address
 * (in the pools, in place), and the named ones are returned to be followed.
 * A name without any address is an error, as it always was.
 */
export async function expandNames(pools: PoolConfig[], server: string, optionOf: (pool: PoolConfig) => string): Promise<NamedMember[]> {
  const resolver = new NameResolver(server, 2000);
  const named: NamedMember[] = [];
  for (const pool of pools) {
    const members: MemberConfig[] = [];
    for (const m of pool.members) {
      const bare = m.host.startsWith('[') && m.host.endsWith(']') ? m.host.slice(1, -1) : m.host;
      if (isIP(bare)) {
        members.push({ ...m, address: bare });
        continue;
      }
      const option = optionOf(pool);
      const answer = await resolver.resolve(bare);
      if (answer.addresses.length === 0) throw new ConfigError(`cannot resolve ${option} ${JSON.stringify(m.host)}: ${answer.error.split(' ').pop()}`);
      const n: NamedMember = { pool: pool.name, name: m.name, host: bare, port: m.port, weight: m.weight, backup: m.backup, maxConnections: m.maxConnections, option, addresses: answer.addresses };
      named.push(n);
      for (const address of n.addresses) members.push(memberOf(n, address));
    }
    pool.members = members;
  }
  return named;
}

/**
 * The main thread's loop: resolve every name each `interval` ms (the next
 * run starts `interval` after the last one ended: runs never overlap), and
 * hand each pool's changes to `apply` (which posts them to the worker).
 */
export class DnsFollower {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly resolver: NameResolver;
  /** Names failing now: logged once when they start, once when they recover. */
  private readonly failing = new Set<NamedMember>();
  /** Addresses not added because they are rsp's own listener (logged once each). */
  private readonly refused = new Set<string>();

  constructor(
    private readonly names: NamedMember[],
    private readonly interval: number,
    server: string,
    private readonly apply: (change: MemberChange) => void,
    /** Why this member would be rsp's own listener, or null. */
    private readonly itself: (pool: string, m: MemberConfig) => string | null = () => null,
  ) {
    // A try is given at most 2 s, and no more than half an interval (250 ms at least).
    this.resolver = new NameResolver(server, Math.min(2000, Math.max(250, Math.floor(interval / 2))));
  }

  start(): void {
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    // Unref'd: rsp's life is its worker's, never this timer's.
    this.timer = setTimeout(() => void this.run(), this.interval).unref();
  }

  /** One round: every name resolved (a name named twice, once), then the changes applied. */
  async run(): Promise<void> {
    try {
      const byHost = new Map<string, Promise<Answer>>();
      for (const n of this.names) if (!byHost.has(n.host)) byHost.set(n.host, this.resolver.resolve(n.host));
      const answers = new Map<string, Answer>();
      for (const [host, answer] of byHost) answers.set(host, await answer);
      if (this.stopped) return;
      const changes = new Map<string, MemberChange>();
      for (const n of this.names) {
        const change = this.follow(n, answers.get(n.host)!);
        if (change === null) continue;
        const pool = changes.get(n.pool);
        if (pool === undefined) changes.set(n.pool, change);
        else {
          pool.add.push(...change.add);
          pool.remove.push(...change.remove);
        }
      }
      for (const change of changes.values()) this.apply(change);
    } catch (error) {
      logError(`DNS: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      this.schedule();
    }
  }

  /** The change one answer makes to a name's members, or null. */
  private follow(n: NamedMember, answer: Answer): MemberChange | null {
    const what = `${n.option} ${n.name}`;
    if (answer.error !== '' || answer.addresses.length === 0) {
      if (!this.failing.has(n)) {
        this.failing.add(n);
        logError(`DNS: cannot resolve ${what} (${describeError(answer.error)}); keeping its last addresses: ${n.addresses.join(', ')}.`);
      }
      return null;
    }
    if (this.failing.delete(n)) log(`DNS: ${what} resolves again: ${answer.addresses.join(', ')}.`);
    const added = answer.addresses.filter((a) => !n.addresses.includes(a));
    const removed = n.addresses.filter((a) => !answer.addresses.includes(a));
    if (added.length === 0 && removed.length === 0) return null;
    n.addresses = answer.addresses;
    const add: MemberConfig[] = [];
    for (const address of added) {
      const m = memberOf(n, address);
      const why = this.itself(n.pool, m);
      if (why === null) {
        add.push(m);
      } else if (!this.refused.has(m.name)) {
        this.refused.add(m.name);
        logError(`DNS: not adding ${why}`);
      }
    }
    return { pool: n.pool, add, remove: removed.map((a) => memberName(n.name, a)) };
  }
}

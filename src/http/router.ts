// `routes`: the pool of a request by its host. An exact host first (a Map),
// then the longest wildcard suffix that matches, then the default. Called per
// request: no string is made unless the host has a port, brackets, a trailing
// dot or upper-case letters (RequestHead.host has none of them but brackets).
import type { RoutesConfig } from '../pools';

const COLON = 0x3a;
const DOT = 0x2e;
const OPEN = 0x5b;

export class Router {
  private readonly exact: Map<string, string>;
  /** Suffixes with their dot (".api.example.com"), longest first. */
  private readonly suffixes: string[];
  private readonly pools: string[];
  private readonly fallback: string | null;

  constructor(routes: RoutesConfig) {
    this.exact = new Map(routes.exact);
    const wildcard = [...routes.wildcard].sort((a, b) => b[0].length - a[0].length);
    this.suffixes = wildcard.map(([suffix]) => suffix);
    this.pools = wildcard.map(([, pool]) => pool);
    this.fallback = routes.default;
  }

  /**
   * The pool for `host` as the request gave it (Host, or an absolute URI's
   * authority): "Example.COM:8080", "[::1]:80", "example.com." all work.
   * null: no route and no default (answer 404).
   */
  poolFor(host: string): string | null {
    const name = normalHost(host);
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    const suffixes = this.suffixes;
    for (let i = 0; i < suffixes.length; i++) {
      const suffix = suffixes[i];
      if (name.length > suffix.length && name.endsWith(suffix)) return this.pools[i];
    }
    return this.fallback;
  }
}

/** The host without port, brackets and trailing dot, lower-case; `host` itself when it is already so. */
export function normalHost(host: string): string {
  let start = 0;
  let end = host.length;
  if (end > 0 && host.charCodeAt(0) === OPEN) {
    const close = host.indexOf(']');
    start = 1;
    end = close < 0 ? host.length : close;
  } else {
    for (let i = 0; i < end; i++) {
      if (host.charCodeAt(i) === COLON) {
        end = i;
        break;
      }
    }
    if (end > 0 && host.charCodeAt(end - 1) === DOT) end--;
  }
  let upper = false;
  for (let i = start; i < end; i++) {
    const c = host.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) {
      upper = true;
      break;
    }
  }
  const name = start === 0 && end === host.length ? host : host.slice(start, end);
  return upper ? name.toLowerCase() : name;
}

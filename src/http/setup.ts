// What the HTTP listeners of one config generation share in a worker: the
// kept-alive backend connections of each pool, the routes, the Lua route()
// (fengari is loaded in a worker only for a config that defines it), the
// limits and timeouts. Built from the validated config, next to its pools.
import type { Config } from '../config';
import type { Pool } from '../balancer/pool';
import type { ProxyContext } from '../proxy';
import type { ProxyVersion } from '../proxyprotocol/write';
import type { Reactor } from '../reactor';
import type { LuaRoute } from './luaroute';
import { requestRouter } from './route';
import { Router } from './router';
import type { HttpContext } from './session';
import { TrustedProxies } from './trusted';
import { Upstreams } from './upstream';

export class HttpSetup {
  readonly upstreams = new Map<Pool, Upstreams>();
  private readonly shared: Omit<HttpContext, keyof ProxyContext | 'route'>;
  private readonly router: Router | null;
  private readonly lua: LuaRoute | null = null;

  /** Throws an Error with a one-line message when route() cannot be loaded. */
  constructor(config: Config, reactor: Reactor, private readonly pools: Map<string, Pool>) {
    if (config.routeHook) {
      const { LuaRoute: Loader } = require('./luaroute') as typeof import('./luaroute');
      this.lua = Loader.load(config.configPath, [...pools.keys()]);
    }
    this.router = config.routes === null ? null : new Router(config.routes);
    const sendProxy = new Map<Pool, ProxyVersion>();
    for (const p of config.pools) {
      const pool = pools.get(p.name)!;
      this.upstreams.set(pool, new Upstreams(reactor, p.keepalive, p.keepaliveTimeout));
      if (p.sendProxy !== null) sendProxy.set(pool, p.sendProxy);
    }
    const trusted = new TrustedProxies(config.trustedProxies);
    this.shared = {
      upstreams: this.upstreams,
      sendProxy,
      headLimits: { requestLine: config.limits.requestLine, headerBytes: config.limits.headerBytes, headers: config.limits.headers },
      maxBody: config.limits.body,
      requestHeadTimeout: config.requestHeadTimeout,
      keepAliveTimeout: config.keepAliveTimeout,
      backendTimeout: config.backendTimeout,
      trusted: (sa) => sa !== null && trusted.size > 0 && trusted.has(sa),
      xForwarded: config.xForwarded,
      draining: { on: false },
    };
  }

  /** The context of one HTTP listener, whose own pool (null: none, routes decide) gets what no route claims. */
  context(base: ProxyContext, listenerPool: Pool | null): HttpContext {
    return { ...base, ...this.shared, route: requestRouter(this.pools, listenerPool, this.router, this.lua) };
  }

  /** The config is being replaced or rsp drains: responses say Connection: close, parked backends go. */
  retire(): void {
    this.shared.draining.on = true;
    for (const u of this.upstreams.values()) u.closeAll();
  }

  /** The shortest of HTTP mode's timeouts, for the sweep that watches them (0: none, or no HTTP listener). */
  static shortestTimeout(config: Config): number {
    if (!config.listeners.some((l) => l.mode === 'http')) return 0;
    const all = [config.requestHeadTimeout, config.keepAliveTimeout, config.backendTimeout].filter((t) => t > 0);
    return all.length === 0 ? 0 : Math.min(...all);
  }
}

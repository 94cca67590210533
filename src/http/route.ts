// Where each request of an HTTP listener goes, in the order nginx and
// OpenResty users expect: Lua's route(req) first when the config defines it
// (a pool name, a status, or nil to fall through), then the routes table by
// Host (exact, then the longest wildcard, then routes.default; 404 when no
// pool is left), else the listener's own pool.
import type { Pool } from '../balancer/pool';
import type { LuaRoute, RouteRequest as LuaRequest } from './luaroute';
import type { RequestHead } from './request';
import type { Router } from './router';
import type { HttpSession, RouteRequest } from './session';

/** What route(req) sees: the parsed head and the client, one object reused for every call. */
class LuaView implements LuaRequest {
  req: RequestHead | null = null;
  session: HttpSession | null = null;
  get method(): string { return this.req!.method; }
  get path(): string { return this.req!.path; }
  get query(): string | null { return this.req!.query; }
  get host(): string { return this.req!.host; }
  get remote(): string { return this.session!.clientAddress; }
  get headerCount(): number { return this.req!.headerCount; }
  header(lowerName: string): string | null { return this.req!.header(lowerName); }
  headerKey(k: number): string { return this.req!.headerKey(k); }
  headerValue(k: number): string { return this.req!.headerValue(k); }
}

export function requestRouter(pools: Map<string, Pool>, listenerPool: Pool | null, router: Router | null, lua: LuaRoute | null): RouteRequest {
  const view = new LuaView();
  return (req, session) => {
    if (lua !== null) {
      view.req = req;
      view.session = session;
      let answer: string | number | null;
      try {
        answer = lua.call(view);
      } finally {
        view.req = null;
        view.session = null;
      }
      if (typeof answer === 'number') return answer;
      if (typeof answer === 'string') {
        const pool = pools.get(answer);
        if (pool === undefined) throw new Error(`route() returned "${answer}", which is not a pool in backends`);
        return pool;
      }
    }
    if (router !== null) {
      const name = router.poolFor(req.host);
      return name === null ? 404 : pools.get(name)!;
    }
    return listenerPool ?? 404;
  };
}

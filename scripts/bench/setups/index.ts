// Every setup the benchmark knows, in the report's row order (which is also
// round 1's order): rsp-pool3 right after rsp-level, the row it is compared
// with, so that in most rounds the two run one after the other; the three
// HTTP-mode rsp rows last, after nginx http and HAProxy http, each next to
// the one it is compared with (no routes, routes, routes + route()).
import type { Setup } from '../setup';
import { direct } from './direct';
import { haproxyHttp, haproxyTcp } from './haproxy';
import { nginxHttp, nginxStream } from './nginx';
import { nodeNet } from './node-net';
import { rspEdge, rspEdgeCopy, rspLevel, rspLevelCopy, rspLevelSplice, rspPool3, rspWorkers2 } from './rsp';
import { rspHttpBare, rspHttpLua, rspHttpRoutes } from './rsp-http';

// The extra ones (rsp-*-copy, rsp-level-splice) run only when --only names them.
export const SETUPS: readonly Setup[] = [direct, rspLevel, rspLevelCopy, rspLevelSplice, rspPool3, rspWorkers2, rspEdge, rspEdgeCopy, nodeNet, nginxStream, nginxHttp, haproxyTcp, haproxyHttp, rspHttpBare, rspHttpRoutes, rspHttpLua];

/** A setup's row label by its name (for a reference that did not run). */
export function labelOf(name: string): string {
  return SETUPS.find((s) => s.name === name)?.label ?? name;
}

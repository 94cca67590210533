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
import { rspEdge, rspLevel, rspPool3 } from './rsp';
import { rspHttpBare, rspHttpLua, rspHttpRoutes } from './rsp-http';

export const SETUPS: readonly Setup[] = [direct, rspLevel, rspPool3, rspEdge, nodeNet, nginxStream, nginxHttp, haproxyTcp, haproxyHttp, rspHttpBare, rspHttpRoutes, rspHttpLua];

/** A setup's row label by its name (for a reference that did not run). */
export function labelOf(name: string): string {
  return SETUPS.find((s) => s.name === name)?.label ?? name;
}

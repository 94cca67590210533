// Every setup the benchmark knows, in the report's row order (which is also
// round 1's order): rsp-pool3 right after rsp-level, the row it is compared
// with, so that in most rounds the two run one after the other.
import type { Setup } from '../setup';
import { direct } from './direct';
import { haproxyHttp, haproxyTcp } from './haproxy';
import { nginxHttp, nginxStream } from './nginx';
import { nodeNet } from './node-net';
import { rspEdge, rspLevel, rspPool3, rspWorkers2 } from './rsp';

export const SETUPS: readonly Setup[] = [direct, rspLevel, rspPool3, rspWorkers2, rspEdge, nodeNet, nginxStream, nginxHttp, haproxyTcp, haproxyHttp];

/** A setup's row label by its name (for a reference that did not run). */
export function labelOf(name: string): string {
  return SETUPS.find((s) => s.name === name)?.label ?? name;
}

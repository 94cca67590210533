// Every setup the benchmark knows, in the report's row order.
import type { Setup } from '../setup';
import { direct } from './direct';
import { haproxyHttp, haproxyTcp } from './haproxy';
import { nginxHttp, nginxStream } from './nginx';
import { nodeNet } from './node-net';
import { rspEdge, rspLevel } from './rsp';

export const SETUPS: readonly Setup[] = [direct, rspLevel, rspEdge, nodeNet, nginxStream, nginxHttp, haproxyTcp, haproxyHttp];

/** A setup's row label by its name (for a reference that did not run). */
export function labelOf(name: string): string {
  return SETUPS.find((s) => s.name === name)?.label ?? name;
}

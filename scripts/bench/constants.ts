// What several parts of the benchmark agree on.
import * as path from 'node:path';

/** The checkout (this file runs as dist/scripts/bench/constants.js). */
export const ROOT = path.join(__dirname, '..', '..', '..');
/** The report's hand-written notes start after this line; each run keeps them. */
export const NOTES_MARKER = '<!-- notes -->';
/** The /small response body, the same from nginx and from backend-server.ts. */
export const SMALL_BODY = 'x'.repeat(100);
/** Ports every backend listens on (the same server behind each): the pool setup's members, one per port. */
export const BACKEND_PORTS = 3;

// What a setup is: one row of the report, something that can stand between
// the load generator and the backend. Adding a proxy to compare = one file in
// setups/ that exports a Setup, and one line in setups/index.ts.
import type { Tools } from './tools';

export interface Setup {
  /** The name `--only` takes, e.g. "rsp-level". */
  readonly name: string;
  /** Its row in the report, e.g. "rsp level". */
  readonly label: string;
  /** False for direct (the backend itself): no CPU, syscalls or memory of its own to measure. */
  readonly proxy: boolean;
  /** Not in a default run, only when `--only` names it (variants for a comparison, e.g. rsp without zero copy). */
  readonly extra?: boolean;
  /** Why it cannot run on this machine (a tool is missing), or null when it can. */
  needs(tools: Tools): string | null;
  /**
   * Starts it in front of 127.0.0.1:backendPort, listening on 127.0.0.1, with
   * its config files in `dir`; `connections` sizes its limits (nginx's
   * worker_connections, HAProxy's maxconn). Resolves once it accepts.
   * `backendPorts` lists every port the same backend serves on, backendPort
   * first: a setup with a pool of backends takes one member per port.
   */
  start(backendPort: number, dir: string, tools: Tools, connections: number, backendPorts: readonly number[]): Promise<Running>;
  /**
   * Optional: checks the started setup through its port before the rounds
   * (only there: the idle-memory run starts it in front of a backend that
   * never answers); resolves with what it saw, for the progress line, or throws.
   */
  check?(port: number): Promise<string>;
}

/** A started setup. */
export interface Running {
  readonly port: number;
  /** The processes whose CPU, syscalls and memory count as its own (nginx: master and worker; rsp: its one process, all threads). */
  pids(): number[];
  /** null while it runs; its exit code or signal once it has exited by itself. */
  exitStatus(): string | null;
  /** What it printed, for a failure's message. */
  output(): string;
  /** Something its start-up checked, for the progress line (the pool setup: how its members were reached). */
  readonly detail?: string;
  /** Stops it and everything it started (SIGTERM to its process group, SIGKILL after a grace period). */
  stop(): Promise<void>;
}

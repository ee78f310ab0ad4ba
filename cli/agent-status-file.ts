// An agent's status file (`pdm agent --status-file FILE`): the agent rewrites it each
// second with its pid and status (no secrets: names, keyIds, counts), 0600 and never
// through a symbolic link. `pdm status --agent FILE` shows it, `pdm keys renew --agent
// FILE` signals the agent by the pid it names.

import { readFileSync, rmSync } from "node:fs";
import { UsageError, writeSecretFile } from "../pdm/index.ts";
import type { Agent, AgentStatus } from "../probes/agent/index.ts";

export interface AgentStatusFile {
  pid: number;
  writtenAt: string;
  status: AgentStatus;
}

/** Keep FILE current while the agent runs; the returned function stops and removes it. */
export function keepAgentStatusFile(agent: Agent, path: string, everyMs = 1000): () => void {
  const write = (): void => {
    const body: AgentStatusFile = { pid: process.pid, writtenAt: new Date().toISOString(), status: agent.status() };
    writeSecretFile(path, `${JSON.stringify(body, null, 1)}\n`, { replace: true, what: "agent status file" });
  };
  write(); // a bad path fails at start, not silently later
  const timer = setInterval(() => {
    try {
      write();
    } catch {
      // the next tick tries again; the agent's work does not depend on this file
    }
  }, everyMs);
  return () => {
    clearInterval(timer);
    rmSync(path, { force: true });
  };
}

export function readAgentStatusFile(path: string): AgentStatusFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read the agent status file ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`, {
      hint: "Start the agent with --status-file FILE.",
    });
  }
  let file: AgentStatusFile;
  try {
    file = JSON.parse(text) as AgentStatusFile;
  } catch {
    throw new UsageError(`${path} is not an agent status file (not JSON)`);
  }
  if (!Number.isInteger(file.pid) || file.pid <= 1 || typeof file.status?.name !== "string") {
    throw new UsageError(`${path} is not an agent status file (no pid and status)`);
  }
  return file;
}

/** Signal the agent the file names, once it is shown to be running still. */
export function signalAgent(file: AgentStatusFile, signal: NodeJS.Signals): void {
  const age = Date.now() - Date.parse(file.writtenAt);
  if (!(age < 10_000)) {
    throw new UsageError(
      `the status file of "${file.status.name}" was last written ${Math.round(age / 1000)} s ago: the agent is not running`,
    );
  }
  try {
    process.kill(file.pid, signal);
  } catch (e) {
    throw new UsageError(`cannot signal pid ${file.pid}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}

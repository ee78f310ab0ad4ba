// The lab: network namespaces that can always be taken down again. Every namespace,
// process and pin directory it makes is recorded, and teardown() undoes all of them,
// synchronously, so it also works from an exit or signal handler. The demo builds its
// topology here (cli/demo/topology.ts), the tests and benchmarks their two hosts
// (two-hosts.ts).
//
// Processes run inside a namespace through `nsenter --net=` (which execs, so the PID
// we hold is the program's own) rather than `ip netns exec`, which remounts /sys and
// would hide the bpffs pins. Their PIDs are also written to a state file, so a run
// killed outright (SIGKILL, power loss) is cleaned up by the next run: it ends the
// recorded processes that are still ours and removes the namespaces by their prefix.

import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface LabOptions {
  /**
   * One data-path state and pin directory for every namespace (a test that reads the
   * pins of both its hosts), rather than one per namespace, as on separate hosts
   * (the demo, where every host's interface is eth0).
   */
  sharedState?: boolean;
}

export interface LabProcess {
  readonly child: ChildProcess;
  readonly label: string;
  output(): { stdout: string; stderr: string };
  /** Resolves when stdout or stderr matches (rejects on timeout or exit first). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code once the process has ended. */
  exited(timeoutMs?: number): Promise<number>;
  /** Line-by-line callback on stderr (for logs worth showing live). */
  onStderrLine(cb: (line: string) => void): void;
}

export class Lab {
  /** Namespaces, in creation order. */
  private readonly namespaces: string[] = [];
  private readonly processes = new Set<LabProcess>();
  private tornDown = false;

  /**
   * @param prefix every namespace name starts with it (e.g. "pdmdemo-")
   * @param stateDir where PIDs are recorded; also the data path's state (PDM_STATE_DIR)
   * @param pinRoot the bpffs directory for the data path's pins (PDM_PIN_ROOT)
   */
  constructor(
    readonly prefix: string,
    readonly stateDir: string,
    readonly pinRoot: string,
    private readonly cwd: string,
    private readonly options: LabOptions = {},
  ) {}

  /**
   * Environment for processes in a namespace: the data path's attach state and pins
   * go to directories of that namespace's own, as on separate hosts (every host's
   * interface is eth0), all inside the lab's directories.
   */
  env(ns: string): NodeJS.ProcessEnv {
    if (this.options.sharedState) return { ...process.env, PDM_STATE_DIR: this.stateDir, PDM_PIN_ROOT: this.pinRoot };
    return { ...process.env, PDM_STATE_DIR: join(this.stateDir, ns), PDM_PIN_ROOT: join(this.pinRoot, ns) };
  }

  /** Removes what an earlier run left behind (it was killed before its teardown). */
  removeLeftovers(): string[] {
    const removed: string[] = [];
    const pidFile = join(this.stateDir, "pids.json");
    if (existsSync(pidFile)) {
      for (const pid of JSON.parse(readFileSync(pidFile, "utf8")) as number[]) {
        // Only a process still running one of our commands (PIDs get reused).
        const cmdline = readCmdline(pid);
        if (cmdline && cmdline.includes(this.cwd)) {
          try {
            process.kill(pid, "SIGKILL");
            removed.push(`process ${pid}`);
          } catch {
            // gone meanwhile
          }
        }
      }
    }
    for (const ns of listNamespaces().filter((n) => n.startsWith(this.prefix))) {
      spawnSync("ip", ["netns", "del", ns]);
      removed.push(`namespace ${ns}`);
    }
    if (existsSync(this.pinRoot)) removed.push(`pins ${this.pinRoot}`);
    rmSync(this.pinRoot, { recursive: true, force: true });
    rmSync(this.stateDir, { recursive: true, force: true });
    return removed;
  }

  addNamespace(name: string): string {
    const ns = `${this.prefix}${name}`;
    sh("ip", ["netns", "add", ns]);
    this.namespaces.push(ns);
    return ns;
  }

  /** A veth pair with one end in each namespace. */
  veth(a: { ns: string; ifname: string }, b: { ns: string; ifname: string }): void {
    this.ip(a.ns, ["link", "add", a.ifname, "type", "veth", "peer", "name", b.ifname, "netns", b.ns]);
  }

  /** `ip -n NS ...` */
  ip(ns: string, args: string[]): string {
    return sh("ip", ["-n", ns, ...args]);
  }

  /** Runs a command inside a namespace and waits for it, whatever its exit code. */
  exec(
    ns: string,
    cmd: string[],
    opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {},
  ): RunResult {
    const r = spawnSync("nsenter", [`--net=/run/netns/${ns}`, ...cmd], {
      encoding: "utf8",
      env: opts.env ?? this.env(ns),
      cwd: this.cwd,
      timeout: opts.timeoutMs ?? 60_000,
      input: opts.input,
    });
    return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr || r.error?.message || "" };
  }

  /** Runs a command inside a namespace and waits; throws with its stderr on failure. */
  run(ns: string, cmd: string[], timeoutMs = 60_000): string {
    const r = this.exec(ns, cmd, { timeoutMs });
    if (r.code !== 0) {
      const why = (r.stderr || r.stdout || `exit ${r.code}`).trim().split("\n").slice(-3).join(" / ");
      throw new Error(`${cmd.slice(0, 4).join(" ")} in ${ns} failed: ${why}`);
    }
    return r.stdout;
  }

  /** Starts a long-running command in a namespace; teardown() ends it by PID. */
  start(ns: string, label: string, cmd: string[]): LabProcess {
    const child = spawn("nsenter", [`--net=/run/netns/${ns}`, ...cmd], {
      env: this.env(ns),
      cwd: this.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let partial = "";
    const lineListeners: Array<(line: string) => void> = [];
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => {
      const text = d.toString();
      stderr += text;
      partial += text;
      const lines = partial.split("\n");
      partial = lines.pop()!;
      for (const line of lines) for (const l of lineListeners) l(line);
    });
    const exit = new Promise<number>((resolve) =>
      child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : -1))),
    );
    const proc: LabProcess = {
      child,
      label,
      output: () => ({ stdout, stderr }),
      onStderrLine: (cb) => void lineListeners.push(cb),
      waitFor: (pattern, timeoutMs = 20_000) =>
        new Promise<void>((resolve, reject) => {
          const check = (): boolean => pattern.test(stdout) || pattern.test(stderr);
          if (check()) return resolve();
          const onData = (): void => {
            if (check()) finish();
          };
          const timer = setTimeout(
            () => finish(new Error(`${label}: no "${pattern.source}" after ${timeoutMs / 1000} s${tail(stderr)}`)),
            timeoutMs,
          );
          let settled = false;
          const finish = (err?: Error): void => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            child.stdout!.off("data", onData);
            child.stderr!.off("data", onData);
            if (err) reject(err);
            else resolve();
          };
          child.stdout!.on("data", onData);
          child.stderr!.on("data", onData);
          void exit.then((code) => {
            if (!check()) finish(new Error(`${label} exited (code ${code}) before "${pattern.source}"${tail(stderr)}`));
          });
        }),
      exited: (timeoutMs = 30_000) =>
        Promise.race([
          exit,
          new Promise<number>((_, reject) =>
            setTimeout(
              () => reject(new Error(`${label} did not exit within ${timeoutMs / 1000} s`)),
              timeoutMs,
            ).unref(),
          ),
        ]),
    };
    this.processes.add(proc);
    void exit.then(() => this.processes.delete(proc));
    this.recordPids();
    return proc;
  }

  /** Asks a process to stop (SIGINT or SIGTERM) and waits; SIGKILL after the timeout. */
  async stop(proc: LabProcess, signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000): Promise<number> {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.child.exitCode ?? 128;
    proc.child.kill(signal);
    try {
      return await proc.exited(timeoutMs);
    } catch {
      proc.child.kill("SIGKILL");
      return proc.exited(5_000);
    }
  }

  /** Undo everything, whatever state the run is in. Synchronous; safe to call twice. */
  teardown(): void {
    if (this.tornDown) return;
    this.tornDown = true;
    this.killProcesses();
    // Deleting a namespace removes its interfaces, and with them their qdiscs, tc
    // programs and route changes; the pinned programs and maps go with the pin root.
    for (const ns of [...this.namespaces].reverse()) spawnSync("ip", ["netns", "del", ns]);
    rmSync(this.pinRoot, { recursive: true, force: true });
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  /** Ends (SIGKILL) every process the lab started that is still running. */
  killProcesses(): void {
    for (const p of this.processes) {
      if (p.child.pid !== undefined && p.child.exitCode === null && p.child.signalCode === null) {
        try {
          process.kill(p.child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  }

  private recordPids(): void {
    if (this.tornDown) return; // a late start must not make the state directory again
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    const pids = [...this.processes].map((p) => p.child.pid).filter((p): p is number => p !== undefined);
    writeFileSync(join(this.stateDir, "pids.json"), JSON.stringify(pids));
  }
}

export function listNamespaces(): string[] {
  return existsSync("/run/netns") ? readdirSync("/run/netns") : [];
}

function readCmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return undefined;
  }
}

function tail(text: string): string {
  const last = text.trim().split("\n").slice(-3).join(" / ");
  return last ? `: ${last}` : "";
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")}: ${(err.stderr ?? err.message).trim()}`);
  }
}

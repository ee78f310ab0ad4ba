// The router, as an authorized analyzer, exports the key log at each renewal (from the
// writer server, or the group master): writers forget old generations, and the capture holds packets sealed under each of them. At
// the end the exports are merged into one key log.

import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PDM, type DemoContext } from "./context.ts";

export class KeyExports {
  private readonly pending: Array<Promise<void>> = [];
  private readonly files: string[] = [];
  /** Set by mergeInto: a renewal's export timer that fires later does nothing (the lab may be gone). */
  private closed = false;

  constructor(
    private readonly ctx: DemoContext,
    private readonly routerNs: string,
    private readonly pki: string,
    /** The writer server, or in group mode the group master. */
    private readonly from: string,
  ) {}

  /** Start an export named `tag` (keys-TAG.log); a failed one only loses what it would have added. */
  export(tag: string): void {
    if (this.closed) return;
    const file = join(this.ctx.out, `keys-${tag}.log`);
    this.files.push(file);
    const args = [
      ...PDM,
      "keys",
      "export",
      "--writer",
      this.from,
      "--ca",
      join(this.pki, "ca.crt"),
      "--cert",
      join(this.pki, "analyzer.crt"),
      "--key",
      join(this.pki, "analyzer.key"),
      "-o",
      file,
      "--force",
    ];
    // At the lowest priority: an export during the workload must not delay the bridges.
    const p = this.ctx.lab.start(this.routerNs, `key export ${tag}`, ["nice", "-n", "19", ...args]);
    this.pending.push(
      p.exited(60_000).then(
        () => undefined,
        () => undefined,
      ),
    );
  }

  /** Wait for every export, then write their union (each generation once) to `to`, 0600. */
  async mergeInto(to: string): Promise<void> {
    this.closed = true;
    await Promise.all(this.pending);
    const lines = new Set<string>();
    for (const part of this.files) {
      if (!existsSync(part)) continue;
      for (const line of readFileSync(part, "utf8").split("\n")) if (line.startsWith("PDMV2_")) lines.add(line);
      rmSync(part, { force: true });
    }
    writeFileSync(to, [...lines].join("\n") + "\n", { mode: 0o600 });
    chmodSync(to, 0o600);
  }
}

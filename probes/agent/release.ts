// The release digest of groups.md 1's release check: SHA-256 over what this pdm runs
// (package.json, the bundled CLI in dist/, the compiled kernel programs), each file
// as its path, length and bytes in path order. Two hosts installed from the same
// package or built from the same commit get the same digest; a changed program file
// changes it. `pdm ca issue --release self` puts this host's digest in a certificate.

import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { UsageError, packageRoot } from "../../pdm/index.ts";

const RUN_FILES: { dir: string; match: RegExp }[] = [
  { dir: ".", match: /^package\.json$/ },
  { dir: "dist", match: /\.mjs$/ },
  { dir: join("bpf", "build"), match: /^pdm(_gcm)?\.bpf\.o$/ },
];

export function releaseDigest(root = packageRoot()): string {
  const files: string[] = [];
  for (const { dir, match } of RUN_FILES) {
    const at = join(root, dir);
    if (!existsSync(at)) continue;
    for (const name of readdirSync(at).sort()) if (match.test(name)) files.push(join(dir, name));
  }
  if (!files.some((f) => f.startsWith("dist"))) {
    throw new UsageError(`no bundled CLI in ${join(root, "dist")}: the release digest covers it`, {
      hint: "Run the set-up (bash scripts/setup.sh), which bundles the CLI.",
    });
  }
  const h = createHash("sha256");
  for (const f of files) {
    const bytes = readFileSync(join(root, f));
    const head = Buffer.alloc(8);
    head.writeBigUInt64BE(BigInt(bytes.length));
    h.update(`${f}\0`).update(head).update(bytes);
  }
  return h.digest("hex");
}

// Where the project's files are (bpf/build, the native modules' builds, fixtures, package.json).
// Found by walking up from this module to the package.json named pdm-toolkit, so it
// is the same whether the code runs from its .ts sources or from the dist/ bundle.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

const PACKAGE_NAME = "pdm-toolkit";
let cached: string | undefined;

export function packageRoot(): string {
  if (cached) return cached;
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (
      existsSync(manifest) &&
      (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === PACKAGE_NAME
    ) {
      cached = dir;
      return dir;
    }
    if (dirname(dir) === dir) throw new Error(`cannot find the ${PACKAGE_NAME} package above ${import.meta.dirname}`);
  }
}

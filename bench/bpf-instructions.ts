// Each eBPF program's size as the kernel accepted it, per layout and AEAD: the
// instructions after the verifier's rewrites (what `bpftool prog dump xlated` lists) and
// the instructions the verifier walked. Loading is all it does (nothing is attached), so
// it compares two builds of bpf/ on the same kernel:
//
//   node --import tsx bench/bpf-instructions.ts [BUILD_DIR]    (default bpf/build; root)
//
// The layout and flags are read-only globals the verifier prunes by, so each
// configuration is a program of its own.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../pdm/index.ts";
import { encodeConfig, ensureBpffs, nativeBpf } from "../probes/datapath/index.ts";
import type { AttachOptions } from "../probes/datapath/index.ts";

const buildDir = process.argv[2] ?? join(packageRoot(), "bpf", "build");
if (buildDir.startsWith("-")) {
  console.error("usage: node --import tsx bench/bpf-instructions.ts [BUILD_DIR]  (as root; default bpf/build)");
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error("bpf-instructions: loading eBPF programs needs root");
  process.exit(1);
}
ensureBpffs();

const ETHERNET = 14;
const configurations: { object: string; options: AttachOptions; programs: string[] }[] = [
  { object: "pdm.bpf.o", options: { ifname: "", layout: "rfc8250" }, programs: ["pdm_egress", "pdm_ingress"] },
  { object: "pdm.bpf.o", options: { ifname: "", layout: "v2-clear" }, programs: ["pdm_egress", "pdm_ingress"] },
  {
    object: "pdm.bpf.o",
    options: { ifname: "", layout: "v2-protected", aead: "chacha20-poly1305" },
    programs: ["pdm_egress", "pdm_egress_seal", "pdm_ingress", "pdm_ingress_open", "pdm_ingress_read"],
  },
  {
    object: "pdm_gcm.bpf.o",
    options: { ifname: "", layout: "v2-protected", aead: "aes-128-gcm" },
    programs: [
      "pdm_egress",
      "pdm_egress_seal",
      "pdm_ingress",
      "pdm_ingress_open",
      "pdm_ingress_read",
      "pdm_gcm_install",
    ],
  },
];

const native = nativeBpf();
console.log("object\tlayout/aead\tprogram\txlated\tverified");
for (const { object, options, programs } of configurations) {
  const path = join(buildDir, object);
  if (!existsSync(path)) {
    console.log(`${object}\t-\t-\tnot built\t-`);
    continue;
  }
  const handle = native.openObject(path);
  try {
    native.setInitialValue(handle, ".rodata", encodeConfig(options, ETHERNET));
    native.loadObject(handle);
    const label = options.aead ? `${options.layout}/${options.aead}` : options.layout;
    for (const program of programs) {
      const info = native.progInfo(native.programFd(handle, program));
      console.log(`${object}\t${label}\t${program}\t${info.instructions}\t${info.verifiedInstructions}`);
    }
  } finally {
    native.closeObject(handle);
  }
}

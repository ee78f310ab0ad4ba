// The protected layouts between two namespaces, as the data-path tests drive them:
// one deployment's keys (a key log for the analyzer, STKs for the kernels), `pdm
// attach` with a key installer per host reading its pins (as a reader agent with
// "datapath" does), UDP request/response captured on the receiving host, and every
// UDP packet of a capture parsed.

import assert from "node:assert/strict";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import {
  AeadId,
  DEFAULT_SUITE,
  deriveClientSecret,
  deriveKeyId,
  deriveStk,
  ipv6Offset,
  parseIpv6,
  parseIpv6Address,
  writeKeyLog,
  type CapturedPacket,
  type FlowTuple,
  type Ipv6Packet,
} from "../../pdm/index.ts";
import { KeyInstaller, oneGeneration } from "../../probes/kernel-keys/index.ts";
import { nativeBpf, PIN } from "../../probes/datapath/index.ts";
import { PDM_BIN, ROOT, type Host, type Topology } from "../../lab/index.ts";
import { fileSource, readCapture } from "../../analyzer/index.ts";

const UDP_PEER = join(ROOT, "test", "helpers", "udp-peer.mjs");

/** One deployment's keys: its SharedSecret in a key log, and the STKs of flows whose client is `client`. */
export function deployment(dir: string, name: string, aead: "aes-128-gcm" | "chacha20-poly1305", client: string) {
  const suite = { ...DEFAULT_SUITE, aead: aead === "aes-128-gcm" ? AeadId.Aes128Gcm : AeadId.Chacha20Poly1305 };
  const sharedSecret = randomBytes(32);
  const salt = randomBytes(32);
  const keys = join(dir, `${name}.keys`);
  writeKeyLog(keys, [
    { kind: "shared", keyId: deriveKeyId(suite.kdf, sharedSecret, salt), suite, salt, secret: sharedSecret },
  ]);
  const clientSecret = deriveClientSecret(suite.kdf, sharedSecret, salt, parseIpv6Address(client));
  const stk = (sender: FlowTuple, kri: number): Uint8Array => deriveStk(suite, clientSecret, salt, sender, kri);
  return { keys, stk };
}

/** `pdm attach --layout LAYOUT` on h (-02's protected layout by default), and a key installer reading its pins (as a reader agent with "datapath" does). */
export function attachProtected(
  topo: Topology,
  h: Host,
  aead: "aes-128-gcm" | "chacha20-poly1305",
  packetsPerKri: number,
  stk: (sender: FlowTuple, kri: number) => Uint8Array,
  extra: string[] = [],
  layout: "v2-protected" | "draft-15-protected" = "v2-protected",
): KeyInstaller {
  const r = topo.exec(h, [
    process.execPath,
    PDM_BIN,
    "attach",
    "-i",
    h.ifname,
    "--layout",
    layout,
    "--aead",
    aead,
    "--packets-per-kri",
    String(packetsPerKri),
    ...extra,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /keys: installed by this host's reader agent/);
  const native = nativeBpf();
  const pins = join(topo.env.PDM_PIN_ROOT!, h.ifname);
  const installer = new KeyInstaller(
    native,
    {
      keys: native.objGet(join(pins, PIN.keys)),
      peerKeys: native.objGet(join(pins, PIN.peerKeys)),
      keyNeeds: native.objGet(join(pins, PIN.keyNeeds)),
      gcmInstall: aead === "aes-128-gcm" ? native.objGet(join(pins, PIN.gcmInstall)) : undefined,
    },
    oneGeneration(stk),
  );
  installer.start();
  return installer;
}

/**
 * Every UDP packet of the capture `file`, parsed (the data-path tests send nothing else
 * over UDP), with the frame it came in.
 */
export async function forEachUdpPacket(file: string, visit: (v: Ipv6Packet, p: CapturedPacket) => void): Promise<void> {
  const source = await fileSource(file);
  try {
    await readCapture(source, (p) => {
      const at = ipv6Offset(p.linkType, p.data, p.data.length);
      if (at < 0) return;
      const v = parseIpv6(p.data, at);
      if (v.ok && v.value.protocol === 17) visit(v.value, p);
    });
  } finally {
    await source.close();
  }
}

/**
 * UDP request/response (udp-peer.mjs) from a to port 7000 on b, which holds each answer
 * `holdMs`, captured on b's interface into `file`. `askArgs`: the asker's arguments after
 * the port. Asynchronous, so that this process's installers answer the kernels during
 * the run. Returns the asker's summary and the hold times the responder measured.
 */
export async function exchangeCaptured(
  topo: Topology,
  file: string,
  holdMs: number,
  askArgs: string[],
  timeoutMs: number,
): Promise<{ sent: number; answered: number; held: number[] }> {
  const { a, b } = topo;
  const capture = topo.spawn(b, [process.execPath, PDM_BIN, "capture", "-i", b.ifname, "-w", file, "-q"]);
  await capture.waitFor(/capturing on|^$/m).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 1500));
  const server = topo.spawn(b, [process.execPath, UDP_PEER, "serve", "7000", String(holdMs)]);
  await server.waitFor(/ready/);
  const ask = topo.spawn(a, [process.execPath, UDP_PEER, "ask", b.addr, "7000", ...askArgs]);
  assert.equal(await ask.exited(timeoutMs), 0, ask.output().stderr);
  const asked = JSON.parse(ask.output().stdout) as { sent: number; answered: number };
  await new Promise((r) => setTimeout(r, 300));
  capture.child.kill("SIGINT");
  assert.equal(await capture.exited(60_000), 0, capture.output().stderr);
  const held = server
    .output()
    .stdout.split("\n")
    .filter((l) => l.startsWith("held"))
    .map((l) => Number(l.split(" ")[1]));
  return { sent: asked.sent, answered: asked.answered, held };
}

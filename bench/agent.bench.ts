// Registration agent scale (issue 4's benchmark): registrations per second, and the
// time to provision N readers (default 1,000) over real mutual TLS 1.3 on loopback.
//
//   make bench-agent               # or: node --import tsx bench/agent.bench.ts [readers]
//
// 1. HPKE registrations WC <-> WS in memory (messages encoded and validated as on the
//    wire, no TLS): registrations per second.
// 2. One writer server; N reader-server agents, each with its own certificate, started
//    together: time from start until every reader has installed and acked the
//    generation, and provisions per second. Certificates are issued before the clock
//    starts (their cost is printed separately).
// 3. Registrations over TLS (a new connection each): registrations per second.
// Writes bench/out/agent.md.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_OFFER, RegistrationServer, memoryChannelPair, register, type Agent } from "../probes/agent/index.ts";
import { Deployment, eventually, rawConnect } from "../lab/index.ts";

const readers = Number(process.argv[2] ?? 1000);
const resultsDir = join(import.meta.dirname, "out");
mkdirSync(resultsDir, { recursive: true });

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await f();
  return [v, (performance.now() - t0) / 1000];
}

const rows: string[] = [];
const d = new Deployment();
try {
  await d.init();
  d.timing = { ...d.timing, periodSeconds: 300, ackTimeoutSeconds: 5 };

  // 1. in memory
  const registrar = new RegistrationServer({
    acceptedSuites: DEFAULT_OFFER,
    rotation: { criticality: "important", keys: 4, periodMs: 600_000 },
    provisionLeadMs: 0,
  });
  const n1 = 300;
  const [, s1] = await timed(async () => {
    for (let i = 0; i < n1; i += 1) {
      const [wc, ws] = memoryChannelPair();
      const served = ws.receive(["hello"]).then((h) => registrar.serve(ws, h));
      await Promise.all([register(wc, { purpose: "renew", offer: DEFAULT_OFFER }), served]);
    }
  });
  rows.push(`| HPKE registrations, in memory | ${n1} | ${s1.toFixed(2)} s | ${(n1 / s1).toFixed(0)} /s |`);

  const ws = await d.agent("ws", ["writer-server"], await d.issue("ws", "writer-server", ["::1"]), { listen: true });
  const wcCert = await d.issue("wc", "writer-client", ["::1"]);
  // The generation the readers get: one registration, effective at once.
  {
    const { channel } = await rawConnect(ws.port!, wcCert);
    await register(channel, { purpose: "register", offer: DEFAULT_OFFER });
    channel.close();
  }
  // 2. N readers
  const [certs, sIssue] = await timed(async () => {
    const out = [];
    for (let i = 0; i < readers; i += 1) out.push(await d.issue(`rs${i}`, "reader-server", ["::1"]));
    return out;
  });
  const wantKeyId = ws.status().generations.at(-1)!.keyId;
  const [, s3] = await timed(async () => {
    const agents: Agent[] = await Promise.all(
      certs.map((c, i) => d.agent(`rs${i}`, ["reader-server"], c, { writerServer: ws.port })),
    );
    await eventually(
      `${readers} readers provisioned`,
      () =>
        agents.every((a) => a.readerStore!.holds().some((k) => Buffer.from(k).toString("hex") === wantKeyId)) &&
        ws.status().provisioning!.provisionsAcked >= readers,
      120_000,
    );
  });
  const stats = { ...ws.status().provisioning! };
  await Promise.all(d.agents.filter((a) => a !== ws).map((a) => a.stop())); // part 3 measures registration alone

  rows.push(
    `| readers provisioned over mutual TLS (join, provision, ack) | ${readers} | ${s3.toFixed(2)} s | ${(readers / s3).toFixed(0)} /s |`,
  );
  const target = readers >= 1000 ? (s3 < 10 ? "met" : "NOT met") : "n/a (fewer than 1000 readers)";
  // 3. over TLS
  const n2 = 200;
  const [, s2] = await timed(async () => {
    for (let i = 0; i < n2; i += 1) {
      const { channel } = await rawConnect(ws.port!, wcCert);
      await register(channel, { purpose: "renew", offer: DEFAULT_OFFER });
      channel.close();
    }
  });
  rows.push(
    `| HPKE registrations over mutual TLS (new connection each) | ${n2} | ${s2.toFixed(2)} s | ${(n2 / s2).toFixed(0)} /s |`,
  );

  const report = [
    `# Registration agent benchmark`,
    "",
    `\`node --import tsx bench/agent.bench.ts ${readers}\`, ${new Date().toISOString()}, ${process.version}, one process, loopback.`,
    "",
    "| what | count | time | rate |",
    "|---|---|---|---|",
    ...rows,
    "",
    `Issuing the ${readers} reader certificates (ECDSA P-256, before the clock): ${sIssue.toFixed(2)} s.`,
    `Provisions sent ${stats.provisionsSent}, acked ${stats.provisionsAcked}, resends ${stats.resends}, failed readers ${stats.failedReaders}.`,
    `Target (1,000 readers provisioned in under 10 s): ${target}.`,
    "",
  ].join("\n");
  process.stdout.write(report);
  writeFileSync(join(resultsDir, "agent.md"), report);
} finally {
  await d.cleanup();
}

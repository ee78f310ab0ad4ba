// Distributed mode's connectivity key set given by a writer (groups.md 2: "given by a
// writer or a group master over its channel"): group members with `distributed.keysFrom`
// ask a writer server over mutual TLS, get the set its config names, and then agree on
// generations among themselves over UDP on loopback, with the writer stopped. Refusals:
// a writer without a set, a certificate of another role, and a member that cannot
// reach any writer yet says so in its status and keeps asking.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { writeConnectivityKeys } from "../../probes/ksp/index.ts";
import type { Agent, Channel } from "../../probes/agent/index.ts";
import { Deployment, eventually, rawConnect, type CertFiles } from "../../lab/index.ts";

async function expectRefusal(channel: Channel, code: string, detail?: RegExp): Promise<void> {
  const reply = await channel.receive(["error"], 5000);
  assert.equal(reply.code, code, `refusal code (message: ${reply.message})`);
  if (detail) assert.match(reply.message, detail);
}

describe("a writer gives group members their connectivity key set", { concurrency: false }, () => {
  const d = new Deployment();
  const base = 46_100 + (process.pid % 400) * 2;
  const keys = { ckn: Buffer.from("rack 7"), cak: randomBytes(16), kgk: randomBytes(16) };
  let ws: Agent;
  let plainWs: Agent;
  let memberCert: (name: string) => Promise<CertFiles>;

  const startMember = (name: string, i: number, writerPort: number, peers: number[]): Promise<Agent> =>
    memberCert(name).then((cert) =>
      d.agent(name, ["group-member"], cert, {
        keyLog: join(d.dir, `${name}.keys`),
        extra: {
          distributed: {
            keysFrom: `[::1]:${writerPort}`,
            knMemory: join(d.dir, `${name}.kns`),
            interface: "lo",
            address: "::1",
            port: base + i,
            peers: peers.map((j) => `[::1]:${base + j}`),
            timers: { helloMs: 200, lifeMs: 900, retireMs: 300, minRekeyMs: 300 },
          },
        },
      }),
    );

  before(async () => {
    await d.init();
    memberCert = (name) => d.issue(name, "group-member", ["::1"]);
    const keyFile = join(d.dir, "group.ksp");
    writeConnectivityKeys(keyFile, keys);
    ws = await d.agent("ws", ["writer-server"], await d.issue("ws", "writer-server", ["::1"]), {
      listen: true,
      extra: { connectivityKeys: keyFile },
    });
    plainWs = await d.agent("plain", ["writer-server"], await d.issue("plain", "writer-server", ["::1"]), {
      listen: true,
    });
  });
  after(() => d.cleanup());

  it("two members get the set from the writer, then agree on one generation with the writer stopped", async () => {
    const a = await startMember("m1", 0, ws.port!, [1]);
    const b = await startMember("m2", 1, ws.port!, [0]);
    await eventually("both members got the set", () =>
      [a, b].every((m) => m.status().member?.distributed !== undefined),
    );
    const wsLog = d.logs.get(ws)!;
    assert.equal(wsLog.filter((l) => l.includes("connectivity-keys-given")).length, 2, wsLog.join("\n"));
    assert.ok(!wsLog.some((l) => l.includes(keys.cak.toString("hex"))), "the CAK never reaches a log");
    await ws.stop();

    await eventually(
      "one generation sealing at both members",
      () => {
        const [sa, sb] = [a.status().member!, b.status().member!];
        return sa.sealingKeyId !== undefined && sa.sealingKeyId === sb.sealingKeyId;
      },
      10_000,
    );
    const status = a.status().member!;
    assert.match(status.connectivityKeys!, /^writer \[::1\]:\d+$/);
    assert.equal(status.distributed!.live.length, 1, "the other member is live");
    assert.equal(status.master, "none (distributed)");
  });

  it("a writer with no set refuses with no-connectivity-keys; another role is refused", async () => {
    const asker = await rawConnect(plainWs.port!, await memberCert("m3"));
    asker.channel.send({ type: "connectivity-keys-request" });
    await expectRefusal(asker.channel, "no-connectivity-keys", /its config has no connectivityKeys/);

    const reader = await rawConnect(plainWs.port!, await d.issue("rs", "reader-server", ["::1"]));
    reader.channel.send({ type: "connectivity-keys-request" });
    await expectRefusal(reader.channel, "wrong-role", /only a group-member/);
  });

  it("a member whose writer refuses keeps asking, and its status says it has no set yet", async () => {
    const m = await startMember("m4", 4, plainWs.port!, [5]);
    await eventually(
      "refused twice",
      () => d.logs.get(m)!.filter((l) => l.includes("connectivity-keys-not-received")).length >= 2,
    );
    const status = m.status().member!;
    assert.match(status.connectivityKeys!, /not received yet/);
    assert.equal(status.distributed, undefined);
    assert.ok(d.logs.get(m)!.some((l) => l.includes("code=peer-error")));
  });
});

// Issue 24's proof on real interfaces: a group master and five members, each in its own
// namespace on one bridge, every member with the protected layout attached and its
// keys installed by its own `pdm agent` (group-member, datapath on eth0), each
// computing its own scrypt as a separate host would. Real UDP traffic between every
// pair, captured on every member, in three phases:
//   1. five members, one generation;
//   2. m5 leaves (its agent stopped): the group renews, and nothing sealed after that
//      opens with what m5 held (its key log, taken as it left);
//   3. m5 joins again: the group renews once more, with five.
// The master's key log opens every option of every phase, across the generations, with
// no authentication failure, no replay and no (Kri, Random Number) pair twice in a direction.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { readKeyLog } from "../../pdm/index.ts";
import { analyzeAll, pairsOf, repeatedPairs, trafficPhase } from "../helpers/group-traffic.ts";
import {
  datapathSkipReason,
  eventually,
  gcmDatapathSkipReason,
  GroupLan,
  LAN_IF,
  PDM_BIN,
  ROOT,
  type LanHost,
} from "../../lab/index.ts";

const skip = datapathSkipReason();
const AEAD = gcmDatapathSkipReason() ? "chacha20-poly1305" : "aes-128-gcm";
const SUITE = AEAD === "aes-128-gcm" ? "0020:0001:0001" : "0020:0001:0003";
const UDP_PEER = join(ROOT, "test", "helpers", "udp-peer.mjs");
const REQUESTS = 30;
const phase = (lan: GroupLan, hosts: LanHost[], name: string) => trafficPhase(lan, hosts, name, { requests: REQUESTS });

/** The master's newest generation, once every one of `members` seals with it (and the master lists just them). */
async function oneGeneration(lan: GroupLan, members: LanHost[], after = 0): Promise<number> {
  let generation = 0;
  await eventually(
    `${members.map((m) => m.name).join(", ")} sealing with one generation after ${after}`,
    () => {
      const g = lan.status(lan.master)?.group;
      if (!g?.generation || g.generation <= after || g.members.length !== members.length) return false;
      generation = g.generation;
      return members.every((m) => lan.status(m)?.member?.sealingGeneration === generation);
    },
    60_000,
  );
  return generation;
}

describe("group master mode: five members in namespaces, protected layout", { skip, concurrency: false }, () => {
  it("every pair sealed and opened; a leave and a join each renew; the departed member opens nothing new", async () => {
    const lan = new GroupLan(5);
    try {
      await lan.issue();
      await lan.startMaster({ suite: SUITE, group: { lifeSeconds: 3, leadSeconds: 2 } });
      for (const m of lan.members) lan.attach(m, AEAD, 40);
      for (const m of lan.members) lan.startMember(m, { datapath: true, lifeSeconds: 3 });
      for (const m of lan.members) {
        const server = lan.lab.start(m.ns, `serve ${m.name}`, [process.execPath, UDP_PEER, "serve", "7000", "0"]);
        await server.waitFor(/ready/);
      }
      const [m1, m2, m3, m4, m5] = lan.members as [LanHost, LanHost, LanHost, LanHost, LanHost];
      const g1 = await oneGeneration(lan, lan.members);
      const one = await phase(lan, lan.members, "one");

      // m5 leaves: what it holds is kept as it left.
      const departedKeys = join(lan.dir, "departed.keys");
      copyFileSync(m5.keyLog, departedKeys);
      await lan.lab.stop(m5.agent!, "SIGTERM");
      const g2 = await oneGeneration(lan, [m1, m2, m3, m4], g1);
      assert.ok(
        readKeyLog(departedKeys).every((e) =>
          readKeyLog(lan.master.keyLog).some((x) => x.keyId.join() === e.keyId.join()),
        ),
      );
      const two = await phase(lan, [m1, m2, m3, m4], "two");

      // m5 joins again: a fresh generation for five.
      lan.startMember(m5, { datapath: true, lifeSeconds: 3 });
      const g3 = await oneGeneration(lan, lan.members, g2);
      const three = await phase(lan, lan.members, "three");

      // m4 hangs (SIGSTOP): dropped after `life` (3 s); resumed, it rejoins and the group renews again.
      const stoppedAt = Date.now();
      m4.agent!.child.kill("SIGSTOP");
      const g4 = await oneGeneration(lan, [m1, m2, m3, m5], g3);
      const droppedAfterMs = Date.now() - stoppedAt;
      assert.ok(droppedAfterMs >= 3000, `dropped after ${droppedAfterMs} ms, not before life`);
      m4.agent!.child.kill("SIGCONT");
      const g5 = await oneGeneration(lan, lan.members, g4);

      // An operator's renewal, through the master's status file; pdm status --agent shows the group.
      const renew = spawnSync(process.execPath, [PDM_BIN, "keys", "renew", "--agent", lan.master.statusFile], {
        encoding: "utf8",
      });
      assert.equal(renew.status, 0, renew.stderr);
      assert.match(renew.stdout, new RegExp(`asked the group master "gm" \\(pid \\d+\\) for a new generation`));
      const g6 = await oneGeneration(lan, lan.members, g5);
      const shown = spawnSync(process.execPath, [PDM_BIN, "status", "--agent", lan.master.statusFile], {
        encoding: "utf8",
      });
      assert.equal(shown.status, 0, shown.stderr);
      const order = lan.status(lan.master)!.group!.members.map((m) => m.name);
      assert.match(shown.stdout, new RegExp(`group: generation ${g6} \\(keyId [0-9a-f]{16}\\)`));
      assert.match(shown.stdout, /members \(5, in membership order\):/);
      assert.match(shown.stdout, new RegExp(order.map((n, i) => `${i + 1}\\. ${n} `).join("[^]*")));
      assert.match(shown.stdout, /refused: heartbeat-missed 1\n/, "m4, silent while stopped");
      const memberShown = spawnSync(process.execPath, [PDM_BIN, "status", "--agent", m1.statusFile], {
        encoding: "utf8",
      });
      assert.match(
        memberShown.stdout,
        new RegExp(`group member of \\[${lan.master.addr}\\]:4500: newest generation ${g6}, sealing with ${g6}`),
      );
      console.log(shown.stdout.replace(/^/gm, "# "));
      console.log(
        `# generations: ${g1} (five members), ${g2} (m5 left), ${g3} (m5 back), ${g4} (m4 stopped, dropped after ${droppedAfterMs} ms), ${g5} (m4 resumed), ${g6} (operator)`,
      );

      // The master's key log opens everything, across the generations.
      const phases: [string, Map<LanHost, string>, LanHost[]][] = [
        ["one", one, lan.members],
        ["two", two, [m1, m2, m3, m4]],
        ["three", three, lan.members],
      ];
      for (const [name, files, hosts] of phases) {
        const { sums, measured, flows } = await analyzeAll(files, lan.master.keyLog);
        assert.deepEqual(
          { authFail: sums.authFail, replay: sums.replay, noKey: sums.noKey },
          { authFail: 0, replay: 0, noKey: 0 },
          `phase ${name}: every option opened with the master's key log`,
        );
        assert.deepEqual(
          [...measured].sort(),
          pairsOf(hosts),
          `phase ${name}: every pair sealed, opened and measured\n${flows.join("\n")}`,
        );
        const { repeats, sealed } = await repeatedPairs(files);
        assert.equal(repeats, 0, `phase ${name}: no (Kri, Random Number) pair twice in a direction`);
        assert.ok(sealed >= pairsOf(hosts).length * REQUESTS, `phase ${name}: ${sealed} sealed packets`);
      }

      // What m5 held as it left opens nothing sealed after it left.
      const departed = await analyzeAll(two, departedKeys);
      assert.equal(departed.measured.size, 0, "no flow of phase two opens with the departed member's keys");
      assert.ok(departed.sums.authFail > 0, `phase two's options fail to open: ${departed.sums.authFail}`);
      // ...while it opened phase one's (it was a member then).
      const before = await analyzeAll(one, departedKeys);
      assert.deepEqual([...before.measured].sort(), pairsOf(lan.members));

      // Each member's kernel: no option failed to open (the keys were always in place).
      for (const m of [m1, m2, m3, m4]) {
        const c = JSON.parse(lan.lab.run(m.ns, [process.execPath, PDM_BIN, "status", "-i", LAN_IF, "--json"]))[0]
          .counters;
        assert.equal(c.auth_fail, 0, `${m.name}: auth_fail`);
      }
    } finally {
      lan.cleanup();
    }
  });
});

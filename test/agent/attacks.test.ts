// What an attacker (or a broken peer) tried against a listening agent, over real
// TCP and TLS on loopback:
//   - a flood of idle and half-open connections from several addresses, which used
//     to exhaust the agent's descriptors and lock every reader out;
//   - registrations at the same moment, which used to commit one generation number
//     with two keys, and a second writer-client certificate taking the deployment over;
//   - one reader certificate reconnecting as if restarted, which used to force a
//     renewal of the whole deployment each time.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { DEFAULT_OFFER, register, type Agent } from "../../probes/agent/index.ts";
import { Deployment, eventually, rawConnect, type CertFiles } from "../../lab/index.ts";
import { hex } from "../../pdm/index.ts";

/** Open a TCP connection from `localAddress`; resolves once connected, with a promise of its close. */
function openFrom(port: number, localAddress: string): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress });
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    socket.on("error", () => undefined); // reset by the agent: expected
    socket.once("connect", () => resolve({ socket, closed }));
    socket.once("close", () => resolve({ socket, closed }));
  });
}

/** The first bytes of a TLS ClientHello record that announces 512 bytes and never sends them. */
const HALF_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);

describe("a listening agent under a connection flood", () => {
  const d = new Deployment();
  let ws: Agent;
  let wcCert: CertFiles;
  before(async () => {
    await d.init();
    d.timing = { ...d.timing, periodSeconds: 300 };
    ws = await d.agent("ws", ["writer-server"], await d.issue("ws", "writer-server", ["127.0.0.1"]), {
      listen: "127.0.0.1:0",
      extra: { connections: { handshakeSeconds: 1, maxUnauthenticated: 100, maxUnauthenticatedPerSource: 40 } },
    });
    wcCert = await d.issue("wc", "writer-client", ["127.0.0.1"]);
  });
  after(() => d.cleanup());

  it("closes stalled handshakes, caps them per source and in all, and a writer client still registers at once", async () => {
    const port = ws.port!;
    const flood: Array<{ socket: net.Socket; closed: Promise<void> }> = [];
    // 8 sources x 60: 480 connections, idle or with half a ClientHello, beyond both limits.
    for (let s = 2; s <= 9; s += 1) {
      for (let i = 0; i < 60; i += 1) {
        const c = await openFrom(port, `127.0.0.${s}`);
        if (i % 2 === 0 && !c.socket.destroyed) c.socket.write(HALF_HELLO);
        flood.push(c);
      }
    }
    const during = ws.status().connections!;
    assert.ok(during.unauthenticated <= 100, `${during.unauthenticated} mid-handshake (limit 100)`);
    assert.ok(during.rejected["too-many-from-source"] >= 8 * 20, "each source held to 40");
    assert.ok(during.rejected["evicted-oldest"] > 0, "the oldest made room for the newest");

    // While the flood holds its connections, the genuine writer client registers.
    const started = Date.now();
    const { channel } = await rawConnect(port, wcCert, "127.0.0.1");
    const g = await register(channel, { purpose: "register", offer: DEFAULT_OFFER });
    const tookMs = Date.now() - started;
    assert.ok(tookMs < 3_000, `registration took ${tookMs} ms under the flood`);
    assert.equal(ws.status().generations[0]!.keyId, hex(g.keyId));
    channel.close();

    // Every flood connection is closed by the agent within the handshake timeout.
    const allClosed = Promise.all(flood.map((c) => c.closed)).then(() => true);
    const inTime = await Promise.race([allClosed, new Promise<false>((r) => setTimeout(() => r(false), 4_000))]);
    assert.ok(inTime, `${flood.filter((c) => !c.socket.destroyed).length} flood connections still open after 4 s`);
    await eventually("nothing mid-handshake", () => ws.status().connections!.unauthenticated === 0);
    const after = ws.status().connections!;
    assert.ok(after.rejected["handshake-timeout"] > 0, "stalled handshakes timed out");

    // The log names a few and summarizes the rest, instead of a line per connection.
    const lines = d.logs.get(ws)!;
    const refusedLines = lines.filter((l) => /tls-handshake-failed|connection-refused/.test(l)).length;
    assert.ok(refusedLines <= 10, `${refusedLines} refusal lines for ${flood.length} connections`);
    await ws.stop(); // flushes the summary of the current window
    assert.ok(
      lines.some((l) => /connections-refused-summary .*notLogged=\d+/.test(l)),
      "a summary line counts the rest",
    );
  });
});

describe("registration races and a second writer client", () => {
  const d = new Deployment();
  let ws: Agent;
  let rs: Agent;
  let wcCert: CertFiles;
  before(async () => {
    await d.init();
    d.timing = { ...d.timing, periodSeconds: 300 };
    ws = await d.agent("ws", ["writer-server", "reader-server"], await d.issue("ws", "writer-server", ["::1"]), {
      listen: true,
    });
    rs = await d.agent("rs", ["reader-server"], await d.issue("rs", "reader-server", ["::1"]), {
      writerServer: ws.port,
    });
    wcCert = await d.issue("wc", "writer-client", ["::1"]);
  });
  after(() => d.cleanup());

  it("serves concurrent registrations one at a time: one generation number each, and every reader agrees", async () => {
    const links = await Promise.all(Array.from({ length: 6 }, () => rawConnect(ws.port!, wcCert)));
    const results = await Promise.all(
      links.map(({ channel }) => register(channel, { purpose: "register", offer: DEFAULT_OFFER })),
    );
    const numbers = results.map((g) => g.generation).sort((a, b) => a - b);
    assert.deepEqual(numbers, [1, 2, 3, 4, 5, 6], "unique, consecutive generation numbers");
    assert.equal(new Set(results.map((g) => hex(g.keyId))).size, 6);
    const newest = results.find((g) => g.generation === 6)!;
    const current = ws.status().generations;
    assert.equal(
      current[current.length - 1]!.keyId,
      hex(newest.keyId),
      "the writer server's newest generation is the last registered",
    );
    await eventually("both readers hold the newest generation", () =>
      [ws, rs].every((a) => a.readerStore!.holds().some((k) => hex(k) === hex(newest.keyId))),
    );
    for (const a of [ws, rs]) {
      assert.equal(
        a.readerStore!.sealingGeneration(newest.effectiveAt)!.keyIdHex,
        hex(newest.keyId),
        `${a.config.name} seals with the newest`,
      );
    }
    for (const { channel } of links) channel.close();
  });

  it("refuses another writer-client certificate unless the config names it", async () => {
    const intruder = await d.issue("wc-other", "writer-client", ["::1"]);
    const before = ws
      .status()
      .generations.map((g) => g.keyId)
      .join(",");
    const { channel } = await rawConnect(ws.port!, intruder);
    await assert.rejects(register(channel, { purpose: "register", offer: DEFAULT_OFFER }), /writer-client-not-allowed/);
    assert.equal(
      ws
        .status()
        .generations.map((g) => g.keyId)
        .join(","),
      before,
      "nothing committed",
    );

    const ws2 = await d.agent("ws2", ["writer-server"], await d.issue("ws2", "writer-server", ["::1"]), {
      listen: true,
      extra: { writerClients: ["wc", "wc-other"] },
    });
    for (const cert of [wcCert, intruder]) {
      const link = await rawConnect(ws2.port!, cert);
      await register(link.channel, { purpose: "register", offer: DEFAULT_OFFER });
      link.channel.close();
    }
    assert.equal(ws2.status().generations.length >= 1, true);
    const third = await d.issue("wc-third", "writer-client", ["::1"]);
    const link = await rawConnect(ws2.port!, third);
    await assert.rejects(
      register(link.channel, { purpose: "register", offer: DEFAULT_OFFER }),
      /writer-client-not-allowed: the writer client "wc-third" is not in/,
    );
  });
});

describe("a reader that keeps restarting", () => {
  const d = new Deployment();
  after(() => d.cleanup());

  it("causes one renewal at once and one deferred, not one per reconnect", async () => {
    await d.init();
    d.timing = { ...d.timing, periodSeconds: 300 };
    const ws = await d.agent("ws", ["writer-server"], await d.issue("ws", "writer-server", ["::1"]), { listen: true });
    const wc = await d.agent("wc", ["writer-client"], await d.issue("wc", "writer-client", ["::1"]), {
      listen: true,
      writerServer: ws.port,
    });
    await eventually("first generation", () => ws.status().generations.length === 1);
    const rsCert = await d.issue("rs", "reader-server", ["::1"]);
    let rs = await d.agent("rs-0", ["reader-server"], rsCert, { writerServer: ws.port });
    await eventually("rs provisioned", () => rs.readerStore!.size === 1);
    const generationsBefore = wc.status().generations.length;
    for (let i = 1; i <= 8; i += 1) {
      await rs.stop(); // keys gone: the next join is a restart
      rs = await d.agent(`rs-${i}`, ["reader-server"], rsCert, { writerServer: ws.port });
      await eventually(`restart ${i} seen`, () => ws.status().provisioning!.restartedReaders >= i);
    }
    await new Promise((r) => setTimeout(r, 1_000)); // any renewal asked for has run by now
    const renewals = ws.status().renewals!;
    assert.equal(ws.status().provisioning!.restartedReaders, 8);
    assert.equal(renewals.renewalsRequested, 1, "one renewal at once");
    assert.equal(renewals.renewalsDeferred, 7, "the other restarts wait for the interval");
    assert.ok(wc.status().generations.length - generationsBefore <= 1, "at most one new generation");
    assert.ok(d.logs.get(ws)!.some((l) => l.includes("renewal-deferred")));
  });
});

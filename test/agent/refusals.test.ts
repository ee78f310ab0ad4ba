// Every refusal of keys.md section 2 over real TLS: wrong CA, expired, wrong role,
// wrong address, malformed and out-of-order messages, a replayed registration, a
// keyId mismatch, an unacknowledged provision. Each is a specific error code sent to
// the peer and logged, and none leaves a new generation or key anywhere.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { deriveKeyId } from "../../pdm/index.ts";
import {
  DEFAULT_OFFER,
  encapsulateSharedSecret,
  initCa,
  register,
  type Agent,
  type Channel,
} from "../../probes/agent/index.ts";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { Deployment, eventually, rawConnect, type CertFiles } from "../../lab/index.ts";

async function expectRefusal(channel: Channel, code: string, detail?: RegExp): Promise<void> {
  const reply = await channel.receive(["error"], 5000);
  assert.equal(reply.code, code, `refusal code (message: ${reply.message})`);
  if (detail) assert.match(reply.message, detail);
}

describe("registration agent refusals", () => {
  const d = new Deployment();
  let ws: Agent;
  let wcCert: CertFiles;
  let rsCert: CertFiles;
  let wcLink: Channel; // the registered writer client's connection: renew-requests arrive here
  const generationsAtWs = () =>
    ws
      .status()
      .generations.map((g) => g.keyId)
      .join(",");

  before(async () => {
    await d.init();
    d.timing = { ...d.timing, periodSeconds: 300, ackTimeoutSeconds: 0.15 }; // no renewal during these tests
    ws = await d.agent("ws", ["writer-server"], await d.issue("ws", "writer-server", ["::1"]), { listen: true });
    wcCert = await d.issue("wc", "writer-client", ["::1"]);
    rsCert = await d.issue("rs", "reader-server", ["::1"]);
    wcLink = (await rawConnect(ws.port!, wcCert)).channel; // one good registration to start from
    await register(wcLink, { purpose: "register", offer: DEFAULT_OFFER });
    await eventually("first generation", () => ws.status().generations.length === 1);
  });
  after(() => d.cleanup());

  const wsLogHas = (code: string): boolean =>
    d.logs.get(ws)!.some((l) => l.includes("refused") && l.includes(`code=${code}`));

  it("refuses a certificate from another CA", async () => {
    const otherCa = join(d.dir, "other-ca");
    await initCa(otherCa);
    const stranger = await d.issue("stranger", "reader-server", ["::1"], {}, otherCa);
    const { channel } = await rawConnect(ws.port!, { ...stranger, ca: join(d.caDir, "ca.crt") });
    await expectRefusal(channel, "wrong-ca", /not issued by this deployment's CA/);
    assert.ok(wsLogHas("wrong-ca"));
  });

  it("refuses an expired certificate", async () => {
    const old = await d.issue("old", "reader-server", ["::1"], {
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const { channel } = await rawConnect(ws.port!, old);
    await expectRefusal(channel, "cert-expired", /validity period/);
  });

  it("refuses a role that may not connect, and a role that may connect but not do this", async () => {
    const rc = await d.issue("rc", "reader-client", ["::1"]);
    const a = await rawConnect(ws.port!, rc);
    await expectRefusal(a.channel, "wrong-role", /reader-client.*only writer-client or reader-server or analyzer/);
    const b = await rawConnect(ws.port!, rsCert);
    b.channel.send({ type: "hello", purpose: "register", suites: DEFAULT_OFFER });
    await expectRefusal(b.channel, "wrong-role", /reader-server may not register/);
  });

  it("refuses a peer connecting from an address its certificate does not name", async () => {
    const elsewhere = await d.issue("elsewhere", "reader-server", ["fd00:99::5"]);
    const { channel } = await rawConnect(ws.port!, elsewhere);
    await expectRefusal(channel, "wrong-address", /connects from ::1, but its certificate names only fd00:99::5/);
  });

  it("refuses malformed frames and messages, naming the field", async () => {
    const cases: [Buffer, string, RegExp][] = [
      [frame("not json"), "malformed-message", /not valid JSON/],
      [
        frame(JSON.stringify({ v: 1, type: "hello", purpose: "register", suites: "x" })),
        "malformed-message",
        /suites: expected an array/,
      ],
      [
        frame(JSON.stringify({ v: 1, type: "hello", purpose: "register", suites: [{ kem: 32, kdf: 1, aead: 2 }] })),
        "malformed-message",
        /suites\[0\]: AEAD id 0x0002 is not allowed/,
      ],
      [frame(JSON.stringify({ v: 2, type: "hello" })), "unsupported-version", /protocol version 1/],
      [frame(JSON.stringify({ v: 1, type: "launch" })), "malformed-message", /unknown message type/],
      [Buffer.from([0x7f, 0xff, 0xff, 0xff]), "malformed-message", /larger than the 65536-byte limit/],
      // A version the agent must not echo: deeply nested (its text overflowed the stack) or 60 KB long.
      [
        frame(`{"v":${"[".repeat(30_000)}${"]".repeat(30_000)},"type":"hello"}`),
        "unsupported-version",
        /the peer sent an array$/,
      ],
      [
        frame(JSON.stringify({ v: "x".repeat(60_000), type: "hello" })),
        "unsupported-version",
        /the peer sent a string of 60000 characters$/,
      ],
    ];
    for (const [bytes, code, detail] of cases) {
      const { channel, socket } = await rawConnect(ws.port!, wcCert);
      socket.write(bytes);
      const reply = await channel.receive(["error"], 5000);
      assert.equal(reply.code, code, `refusal code (message: ${reply.message})`);
      assert.match(reply.message, detail);
      assert.ok(reply.message.length <= 500, "within the protocol's 500 characters");
      // The reason reaches the agent's log too, not just "closed".
      await eventually(`log line for ${code}`, () =>
        d.logs
          .get(ws)!
          .some((l) => l.includes("refused") && l.includes(`code=${code}`) && detail.test(l.replace(/"$/, ""))),
      );
    }
  });

  it("refuses an out-of-order message", async () => {
    const { channel } = await rawConnect(ws.port!, wcCert);
    channel.send({ type: "hello", purpose: "register", suites: DEFAULT_OFFER });
    await channel.receive(["hello-ack"]);
    channel.send({ type: "confirm", keyId: new Uint8Array(8) });
    await expectRefusal(channel, "unexpected-message", /expected kem, got confirm/);
  });

  it("refuses a replayed registration and a keyId mismatch, committing nothing", async () => {
    const before = generationsAtWs();
    // A complete registration by hand, to keep its kem message.
    const a = await rawConnect(ws.port!, wcCert);
    a.channel.send({ type: "hello", purpose: "renew", suites: DEFAULT_OFFER });
    const ack = await a.channel.receive(["hello-ack"]);
    const { enc, sharedSecret } = await encapsulateSharedSecret(ack.suite, ack.publicKey);
    const salt = new Uint8Array(randomBytes(32));
    a.channel.send({ type: "kem", enc, salt });
    const registered = await a.channel.receive(["registered"]);
    assert.equal(
      Buffer.from(registered.keyId).toString("hex"),
      Buffer.from(deriveKeyId(ack.suite.kdf, sharedSecret, salt)).toString("hex"),
    );
    // Confirm the wrong keyId: refused, and the writer server commits nothing.
    a.channel.send({ type: "confirm", keyId: new Uint8Array(8) });
    await expectRefusal(a.channel, "key-id-mismatch");
    assert.equal(generationsAtWs(), before);

    // Replaying the same kem on a new connection is refused too.
    const b = await rawConnect(ws.port!, wcCert);
    b.channel.send({ type: "hello", purpose: "renew", suites: DEFAULT_OFFER });
    await b.channel.receive(["hello-ack"]);
    b.channel.send({ type: "kem", enc, salt });
    await expectRefusal(b.channel, "replayed-registration");
    assert.equal(generationsAtWs(), before);
    assert.ok(wsLogHas("replayed-registration") && wsLogHas("key-id-mismatch"));
  });

  it("marks a reader failed after 4 unacknowledged resends, and the reader must join again", async () => {
    const failedBefore = ws.status().provisioning!.failedReaders;
    const { channel } = await rawConnect(ws.port!, rsCert);
    channel.send({ type: "join", holds: [] });
    let provisions = 0;
    for (;;) {
      const m = await channel.receive(["provision", "error"], 5000);
      if (m.type === "error") {
        assert.equal(m.code, "provision-unacknowledged");
        break;
      }
      provisions += 1;
    }
    assert.equal(provisions, 5, "the provision and 4 resends");
    assert.equal(ws.status().provisioning!.failedReaders, failedBefore + 1);

    // The same reader joining again (it discarded everything) is provisioned, open-only:
    // it may have sealed under that generation before failing, so sealing again could
    // repeat a nonce. The writer server asks its writer client for a renewal.
    const again = await rawConnect(ws.port!, rsCert);
    again.channel.send({ type: "join", holds: [] });
    const p = await again.channel.receive(["provision"]);
    assert.equal(p.sealAllowed, false);
    again.channel.send({ type: "ack", keyId: p.keyId, generation: p.generation });
    const request = await wcLink.receive(["renew-request"], 5000);
    assert.match(request.reason, /reader rs restarted/);
    again.channel.close();
  });
});

function frame(text: string): Buffer {
  const body = Buffer.from(text);
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

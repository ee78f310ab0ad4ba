// Key-log export (`pdm keys export`), both sides. An analyzer asks a writer or a group
// master over mutual TLS (fetchKeyLog) and gets the generations it may read, as key-log
// entries: the SharedSecrets, or one client address's ClientSecrets, which is all a
// writer client ever gives (answerKeyLogExport).

import tls from "node:tls";
import { formatIpv6Address, type KeyLogEntry } from "../../pdm/index.ts";
import { StreamChannel, type Channel } from "./channel.ts";
import type { Endpoint } from "./config.ts";
import { RegistrationError } from "./errors.ts";
import { grantFor, type Generation } from "./generation.ts";
import type { Logger } from "./log.ts";
import type { KeyLogGrant, MessageOf } from "./messages.ts";
import { clientOptions, loadTlsMaterial, verifyPeer, type PeerIdentity } from "./tls.ts";

/** Answer an analyzer's export request with `generations`, then close. */
export function answerKeyLogExport(
  channel: Channel,
  peer: PeerIdentity,
  request: MessageOf<"export-request">,
  from: { generations: readonly Generation[]; clientSecretsOnly: boolean; log: Logger },
): void {
  if (from.clientSecretsOnly && !request.client)
    throw new RegistrationError("wrong-role", "a writer client exports ClientSecrets only: ask for one client address");
  const entries: KeyLogGrant[] = from.generations.map((g) => ({
    keyId: g.keyId,
    suite: g.suite,
    salt: g.salt,
    grant: request.client ? grantFor(g, { kind: "client", address: request.client }) : grantFor(g, { kind: "server" }),
  }));
  channel.send({ type: "key-log", entries });
  from.log.log("info", "keys-exported", {
    analyzer: peer.name,
    generations: entries.length,
    scope: request.client ? formatIpv6Address(request.client) : "shared",
  });
  channel.close();
}

/** `pdm keys export`: ask a writer or a group master for a key log over mutual TLS, as an analyzer. */
export async function fetchKeyLog(
  at: Endpoint,
  files: { ca: string; cert: string; key: string },
  client?: Uint8Array,
): Promise<KeyLogEntry[]> {
  const material = loadTlsMaterial(files);
  const socket = tls.connect(clientOptions(material, at.host, at.port));
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", resolve);
    socket.once("error", (e) =>
      reject(
        new RegistrationError("closed", `cannot connect to ${at.host} port ${at.port}: ${e.message}`, { cause: e }),
      ),
    );
  });
  const channel = new StreamChannel(socket);
  try {
    verifyPeer(socket, ["writer-server", "writer-client", "group-master"]);
    channel.send(client ? { type: "export-request", client } : { type: "export-request" });
    const reply = await channel.receive(["key-log"]);
    return reply.entries.map((e): KeyLogEntry =>
      e.grant.kind === "shared"
        ? { kind: "shared", keyId: e.keyId, suite: e.suite, salt: e.salt, secret: e.grant.secret }
        : {
            kind: "client",
            keyId: e.keyId,
            suite: e.suite,
            clientAddress: e.grant.clientAddress,
            salt: e.salt,
            secret: e.grant.secret,
          },
    );
  } finally {
    channel.close();
  }
}

// A group member's side of groups.md 1: join the group master, and for every
// generation it sends, check the membership it lists (each certificate from our CA,
// valid now, a group member's, in order, ours among them), recompute the master key
// and SK, install SK as the generation's SharedSecret and acknowledge with its keyId.
// The member then holds exactly what a reader server holds: the kernel's keys, Kri
// rotation and make-before-break switching work unchanged.

import { X509Certificate } from "node:crypto";
import { deriveGroupSecretKey, deriveKeyId, groupMasterKey, memberOrderKey } from "../../pdm/index.ts";
import type { Channel } from "./channel.ts";
import { certificateIdentity, certificateSignature } from "./certs.ts";
import { RegistrationError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { MessageOf } from "./messages.ts";
import type { ReaderKeyStore } from "./reader-keys.ts";

export interface GroupMemberOptions {
  log: Logger;
  /** The deployment's CA: every listed certificate must be issued by it. */
  ca: X509Certificate;
  /** This member's own certificate (DER): it must be among those listed. */
  own: Uint8Array;
  /** Heartbeats go every third of it; a master silent for this long is given up. */
  lifeMs: number;
  /** The highest generation seen from any master (a restarted master continues above it). */
  seen: { generation: number };
  onInstall?: (keyIdHex: string, generation: number) => void;
  now?: () => number;
  /** Certificates already checked (CA signature, role) and their signature values, kept across generations. */
  checked?: Map<string, CheckedCertificate>;
  /** The master gave distributed mode's connectivity key set. */
  onConnectivityKeys?: (keys: { ckn: Uint8Array; cak: Uint8Array; kgk: Uint8Array }) => void;
}

/** What checking a certificate found once; its validity period is compared with the clock each time. */
export interface CheckedCertificate {
  signature: Uint8Array;
  validFrom: number;
  validTo: number;
}

/** A member forgets the certificates it checked beyond this many (a group has at most 1024). */
const MAX_CHECKED = 4096;

/**
 * Join the master and install every generation it sends, until the channel closes
 * (resolves), the master falls silent (rejects with `heartbeat-missed`) or refuses
 * this member (rejects with its error).
 */
export async function followGroupMaster(
  channel: Channel,
  store: ReaderKeyStore,
  options: GroupMemberOptions,
): Promise<void> {
  channel.send({ type: "member-join", holds: store.holds(), generation: options.seen.generation });
  const beat = setInterval(() => {
    if (channel.isOpen) channel.send({ type: "heartbeat" });
  }, options.lifeMs / 3);
  let last = 0; // generations of this connection only go up
  try {
    for (;;) {
      let m: MessageOf<"group-generation" | "heartbeat" | "connectivity-keys">;
      try {
        m = await channel.receive(["group-generation", "heartbeat", "connectivity-keys"], options.lifeMs);
      } catch (e) {
        if (e instanceof RegistrationError && e.code === "closed") return;
        if (e instanceof RegistrationError && e.code === "timeout") {
          throw new RegistrationError("heartbeat-missed", `the group master said nothing for ${options.lifeMs} ms`);
        }
        throw e;
      }
      if (m.type === "heartbeat") continue;
      if (m.type === "connectivity-keys") {
        options.onConnectivityKeys?.({ ckn: m.ckn, cak: m.cak, kgk: m.kgk });
        continue;
      }
      try {
        if (m.generation <= last) {
          throw new RegistrationError(
            "unexpected-message",
            `generation ${m.generation} after generation ${last}: generations only go up`,
          );
        }
        last = m.generation;
        const signatures = checkMembership(m.members, options);
        const master = groupMasterKey({ seed: m.seed, generation: m.generation, timestamp: m.timestamp, signatures });
        const sk = await deriveGroupSecretKey(master, m.salt, m.suite.aead);
        const keyId = deriveKeyId(m.suite.kdf, sk, m.salt);
        const g = store.install({
          type: "provision",
          keyId,
          generation: m.generation,
          effectiveAt: m.effectiveAt,
          suite: m.suite,
          salt: m.salt,
          rotation: m.rotation,
          grant: { kind: "shared", secret: sk },
          sealAllowed: true,
        });
        options.seen.generation = Math.max(options.seen.generation, m.generation);
        if (!channel.isOpen) return; // dropped while scrypt ran: the ack has nowhere to go
        channel.send({ type: "ack", keyId, generation: m.generation });
        options.log.log("info", "group-generation-installed", {
          generation: m.generation,
          keyId: g.keyIdHex,
          members: m.members.length,
          effectiveAt: new Date(m.effectiveAt).toISOString(),
        });
        options.onInstall?.(g.keyIdHex, m.generation);
      } catch (e) {
        if (e instanceof RegistrationError && channel.isOpen) channel.refuse(e);
        throw e;
      }
    }
  } finally {
    clearInterval(beat);
  }
}

/**
 * The listed certificates' signature values, in order, once every check of groups.md 1
 * passes: issued by our CA, valid now, a group member's, strictly ascending by SHA-256
 * of the DER (so no duplicates), and ours among them.
 */
export function checkMembership(
  members: readonly Uint8Array[],
  options: Pick<GroupMemberOptions, "ca" | "own" | "now" | "checked">,
): Uint8Array[] {
  const now = (options.now ?? Date.now)();
  const invalid = (i: number, why: string): never => {
    throw new RegistrationError("membership-invalid", `member ${i + 1} of ${members.length}: ${why}`);
  };
  const checked = options.checked ?? new Map<string, CheckedCertificate>();
  let previous: Buffer | undefined;
  let ours = false;
  const signatures: Uint8Array[] = [];
  members.forEach((der, i) => {
    const key = memberOrderKey(der);
    if (previous && Buffer.compare(previous, key) >= 0) invalid(i, "out of order (or listed twice)");
    previous = key;
    const id = key.toString("hex");
    let c = checked.get(id);
    if (!c) {
      // Once per certificate: the CA's signature and the role (about 0.8 ms); a group
      // of hundreds renews often, and its membership changes little.
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(der);
      } catch {
        return invalid(i, "not a certificate");
      }
      if (!cert.checkIssued(options.ca) || !cert.verify(options.ca.publicKey)) invalid(i, "not issued by our CA");
      if (!certificateIdentity(cert).roles.includes("group-member")) invalid(i, "not a group-member certificate");
      c = {
        signature: certificateSignature(der),
        validFrom: Date.parse(cert.validFrom),
        validTo: Date.parse(cert.validTo),
      };
      if (checked.size >= MAX_CHECKED) checked.clear();
      checked.set(id, c);
    }
    if (now < c.validFrom || now > c.validTo) invalid(i, "outside its validity period");
    if (Buffer.from(options.own).equals(Buffer.from(der))) ours = true;
    signatures.push(c.signature);
  });
  if (!ours) throw new RegistrationError("membership-invalid", "this member is not in the generation's membership");
  return signatures;
}

// Mutual TLS 1.3 between agents (keys.md section 2). Both sides require a certificate
// from the deployment CA. Node completes the handshake even when the peer's chain does
// not verify (rejectUnauthorized: false) so that this module can say *why* in an
// `error` reply and in the log: wrong CA, expired, wrong role, wrong address.

import { readFileSync } from "node:fs";
import tls from "node:tls";
import { UsageError, formatIpv6Address } from "../../pdm/index.ts";
import { certificateIdentity, ipTo16, type CertificateIdentity } from "./certs.ts";
import { RegistrationError } from "./errors.ts";
import type { Role } from "./messages.ts";

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/** The same three, as PEM text. */
export type TlsMaterial = Record<keyof TlsFiles, string>;

export function loadTlsMaterial(files: TlsFiles): TlsMaterial {
  const read = (what: string, path: string): string => {
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      throw new UsageError(
        `cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  };
  return {
    ca: read("CA certificate", files.ca),
    cert: read("certificate", files.cert),
    key: read("private key", files.key),
  };
}

const COMMON = { minVersion: "TLSv1.3", maxVersion: "TLSv1.3" } as const;

export function serverOptions(m: TlsMaterial): tls.TlsOptions {
  return { ...COMMON, ca: m.ca, cert: m.cert, key: m.key, requestCert: true, rejectUnauthorized: false };
}

// Parsing the PEM key and chain costs about a millisecond: once per agent, not per connection.
const clientContexts = new WeakMap<TlsMaterial, tls.SecureContext>();

export function clientOptions(m: TlsMaterial, host: string, port: number): tls.ConnectionOptions {
  let secureContext = clientContexts.get(m);
  if (!secureContext) {
    secureContext = tls.createSecureContext({ ...COMMON, ca: m.ca, cert: m.cert, key: m.key });
    clientContexts.set(m, secureContext);
  }
  return {
    ...COMMON,
    host,
    port,
    secureContext,
    rejectUnauthorized: false, // checked by verifyPeer, which names the reason
    checkServerIdentity: () => undefined, // role and address are checked by verifyPeer
  };
}

const WRONG_CA = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
]);
const EXPIRED = new Set(["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"]);

export interface PeerIdentity extends CertificateIdentity {
  role: Role;
  remoteAddress: string;
}

/**
 * Check the peer of an established TLS connection: chain to our CA, validity, one of
 * `allowedRoles`, and the connection's address among the certificate's IP SANs
 * (unless `bindAddress` is false: a group master configured without address binding).
 */
export function verifyPeer(
  socket: tls.TLSSocket,
  allowedRoles: readonly Role[],
  options: { remoteAddress?: string; bindAddress?: boolean } = {},
): PeerIdentity {
  const cert = socket.getPeerX509Certificate(); // cheaper than getPeerCertificate(), which builds a whole object
  if (!cert) throw new RegistrationError("no-certificate", "the peer presented no certificate");
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? "unknown");
    if (EXPIRED.has(code)) {
      throw new RegistrationError(
        "cert-expired",
        `the peer's certificate is outside its validity period (${code}, valid to ${cert.validTo})`,
      );
    }
    if (WRONG_CA.has(code))
      throw new RegistrationError("wrong-ca", `the peer's certificate is not issued by this deployment's CA (${code})`);
    throw new RegistrationError("bad-certificate", `the peer's certificate was refused (${code})`);
  }
  const identity = certificateIdentity(cert);
  const role = identity.roles.find((r) => allowedRoles.includes(r));
  if (!role) {
    const has = identity.roles.length ? identity.roles.join(", ") : "no pdm role";
    throw new RegistrationError(
      "wrong-role",
      `the peer's certificate is for ${has}; here only ${allowedRoles.join(" or ")} may connect`,
    );
  }
  const remote = options.remoteAddress ?? socket.remoteAddress ?? "";
  const bytes = ipTo16(remote);
  if (options.bindAddress === false) return { ...identity, role, remoteAddress: remote };
  if (!bytes || !identity.addresses.some((a) => Buffer.from(a).equals(Buffer.from(bytes)))) {
    const named = identity.addresses.map(formatIpv6Address).join(", ");
    throw new RegistrationError(
      "wrong-address",
      `the peer connects from ${remote}, but its certificate names only ${named}`,
    );
  }
  return { ...identity, role, remoteAddress: remote };
}

/** Parse "[addr]:port", "addr:port" (IPv4 or name) into host and port (0: any free port, for listen). */
export function parseEndpoint(text: string, field: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port < 65536))
    throw new UsageError(`${field}: "${text}" is not HOST:PORT (IPv6 as [addr]:port)`);
  return { host: m[1]!, port };
}

/** This agent's own certificate (the first in its PEM file), DER. */
export function ownCertificateDer(m: TlsMaterial): Buffer {
  const body = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(m.cert)?.[1];
  if (!body)
    throw new RegistrationError("bad-certificate", "the agent's own certificate file holds no PEM certificate");
  return Buffer.from(body.replace(/\s+/g, ""), "base64");
}

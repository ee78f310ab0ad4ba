// The deployment's private CA and role certificates (keys.md section 2), made with
// @peculiar/x509 over WebCrypto (ECDSA P-256, SHA-256): no hand-written ASN.1.
//
// A role certificate names its role twice, as a SAN URI `pdm:role:<role>` (what the
// agent checks) and as the subject OU (what a person reads), and its host addresses as
// IP SANs. Every file is written with mode 0600.

import "reflect-metadata"; // @peculiar/x509 uses tsyringe, which needs the Reflect polyfill
import * as x509 from "@peculiar/x509";
import { X509Certificate, randomBytes, webcrypto } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { UsageError, parseIpv6Address, writeSecretFile } from "../../pdm/index.ts";
import { ROLES, type Role } from "./messages.ts";

x509.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto);

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const DAY_MS = 86_400_000;
export const ROLE_URI_PREFIX = "pdm:role:";
/** groups.md 1's release check: a SAN URI naming the SHA-256 of the pdm release the holder runs. */
export const RELEASE_URI_PREFIX = "pdm:release:";

export interface CaFiles {
  cert: string;
  key: string;
}

export function caFiles(dir: string): CaFiles {
  return { cert: join(dir, "ca.crt"), key: join(dir, "ca.key") };
}

function writePrivate(path: string, text: string, replace: boolean | undefined, what: string): void {
  writeSecretFile(path, text, { replace, what });
}

/** Days of validity as given on the command line: a whole number from 1 to 100 years' worth. */
export function checkDays(days: number | undefined, field = "--days"): void {
  if (days === undefined) return;
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new UsageError(
      `${field} must be a whole number of days from 1 to ${MAX_DAYS}, got ${String(days).slice(0, 20)}`,
    );
  }
}
const MAX_DAYS = 36_500;

/**
 * The CA's directory, made 0700, or an existing one tightened to 0700; a symbolic
 * link or something other than a directory is refused (the CA key goes there).
 */
function privateDirectory(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  if (stat.isSymbolicLink() || !stat.isDirectory())
    throw new UsageError(
      `${dir} is not a directory of its own (a symbolic link or a file): the CA key is not written there`,
    );
  if ((stat.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

async function exportKey(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f; // a positive INTEGER
  return bytes.toString("hex");
}

export interface CaInitOptions {
  name?: string;
  days?: number;
  force?: boolean;
}

/** `pdm ca init`: a self-signed CA key and certificate in `dir`. */
export async function initCa(dir: string, options: CaInitOptions = {}): Promise<CaFiles> {
  const files = caFiles(dir);
  checkDays(options.days);
  if (existsSync(files.key) && !options.force) {
    throw new UsageError(`${files.key} already exists`, {
      hint: "Use --force to replace the CA (every certificate it issued stops working).",
    });
  }
  privateDirectory(dir);
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${escapeDn(options.name ?? "pdm deployment CA")}`,
    notBefore: new Date(now - 5 * 60_000),
    notAfter: new Date(now + (options.days ?? 3650) * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  writePrivate(files.key, await exportKey(keys.privateKey), options.force, "CA key");
  writePrivate(files.cert, cert.toString("pem"), options.force, "CA certificate");
  return files;
}

export interface IssueOptions {
  role: Role;
  /** Host addresses: the first IPv6 one is the reader client's PDM address. */
  addresses: string[];
  name?: string;
  days?: number;
  /** Replace existing OUT.crt / OUT.key files. */
  force?: boolean;
  /** The SHA-256 (64 hex digits) of the pdm release the holder runs (groups.md 1's release check). */
  release?: string;
  /** For tests of refusal: a validity window that is already over. */
  notBefore?: Date;
  notAfter?: Date;
}

/** `pdm ca issue`: a role certificate and key signed by the CA in `caDir`, written to `<out>.crt/.key`. */
export async function issueCertificate(caDir: string, out: string, options: IssueOptions): Promise<CaFiles> {
  if (!ROLES.includes(options.role)) throw new UsageError(`role "${options.role}" is not one of ${ROLES.join(", ")}`);
  if (options.addresses.length === 0) throw new UsageError("a role certificate needs at least one --addr");
  for (const a of options.addresses) if (isIP(a) === 0) throw new UsageError(`--addr "${a}" is not an IP address`);
  checkDays(options.days);
  if (options.release !== undefined && !/^[0-9a-f]{64}$/.test(options.release))
    throw new UsageError(
      `--release must be 64 lowercase hex digits (a SHA-256), got "${options.release.slice(0, 80)}"`,
    );
  const files = caFiles(caDir);
  if (!existsSync(files.key))
    throw new UsageError(`no CA in ${caDir}`, { hint: `Run "pdm ca init --dir ${caDir}" first.` });
  const ca = new x509.X509Certificate(readFileSync(files.cert, "utf8"));
  const caKey = await webcrypto.subtle.importKey(
    "pkcs8",
    x509.PemConverter.decode(readFileSync(files.key, "utf8"))[0]!,
    ALGORITHM,
    false,
    ["sign"],
  );
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const name = options.name ?? `${options.role} ${options.addresses[0]}`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${escapeDn(name)}, OU=${options.role}`,
    issuer: ca.subject,
    notBefore: options.notBefore ?? new Date(now - 5 * 60_000),
    notAfter: options.notAfter ?? new Date(now + (options.days ?? 365) * DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...options.addresses.map((value) => ({ type: "ip" as const, value })),
        { type: "url" as const, value: `${ROLE_URI_PREFIX}${options.role}` },
        ...(options.release ? [{ type: "url" as const, value: `${RELEASE_URI_PREFIX}${options.release}` }] : []),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
    ],
  });
  const result = { cert: `${out}.crt`, key: `${out}.key` };
  for (const path of [result.key, result.cert]) {
    // Both are checked before either is written: no half-replaced pair.
    if (existsSync(path) && !options.force)
      throw new UsageError(`${path} already exists`, { hint: "Use --force to replace it, or choose another -o." });
  }
  writePrivate(result.key, await exportKey(keys.privateKey), options.force, "private key");
  writePrivate(result.cert, cert.toString("pem"), options.force, "certificate");
  return result;
}

function escapeDn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, "\\$1");
}

/** What a certificate says about its holder. */
export interface CertificateIdentity {
  roles: Role[];
  /** Every IP SAN as 16 bytes (IPv4 as ::ffff:a.b.c.d). */
  addresses: Uint8Array[];
  /** The first IPv6 (not IPv4-mapped) SAN: a reader client's PDM address. */
  pdmAddress: Uint8Array | undefined;
  name: string;
  fingerprint: string;
  validTo: string;
  /** The release digest its SAN names (groups.md 1), if any. */
  release: string | undefined;
}

/** Normalise any IP text (IPv4, IPv6, ::ffff:IPv4, the long form Node prints) to 16 bytes. */
export function ipTo16(text: string): Uint8Array | undefined {
  const bare = text.trim();
  if (isIP(bare) === 4) return parseIpv6Address(`::ffff:${bare}`);
  if (isIP(bare) === 6) return parseIpv6Address(bare);
  return undefined;
}

export function certificateIdentity(certOrDer: X509Certificate | Uint8Array): CertificateIdentity {
  const cert = certOrDer instanceof X509Certificate ? certOrDer : new X509Certificate(certOrDer);
  const roles: Role[] = [];
  const addresses: Uint8Array[] = [];
  let pdmAddress: Uint8Array | undefined;
  let release: string | undefined;
  for (const entry of (cert.subjectAltName ?? "").split(/,\s*/)) {
    if (entry.startsWith(`URI:${RELEASE_URI_PREFIX}`)) {
      release ??= entry.slice(`URI:${RELEASE_URI_PREFIX}`.length);
    } else if (entry.startsWith(`URI:${ROLE_URI_PREFIX}`)) {
      const role = entry.slice(`URI:${ROLE_URI_PREFIX}`.length) as Role;
      if (ROLES.includes(role)) roles.push(role);
    } else if (entry.startsWith("IP Address:")) {
      const text = entry.slice("IP Address:".length);
      const bytes = ipTo16(text);
      if (!bytes) continue;
      addresses.push(bytes);
      const mapped = bytes.subarray(0, 12).every((b, i) => b === (i >= 10 ? 0xff : 0));
      if (!pdmAddress && isIP(text) === 6 && !mapped) pdmAddress = bytes;
    }
  }
  const cn = /CN=([^\n]+)/.exec(cert.subject)?.[1] ?? cert.subject;
  return { roles, addresses, pdmAddress, name: cn, fingerprint: cert.fingerprint256, validTo: cert.validTo, release };
}

/** The signature value of a certificate (its BIT STRING's bytes): what groups.md 1 hashes per member. */
export function certificateSignature(der: Uint8Array): Uint8Array {
  return new Uint8Array(new x509.X509Certificate(der).signature);
}

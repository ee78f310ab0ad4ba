// RegistrationError: a peer, a message or a certificate was refused. `code` is a short
// stable identifier (logged, counted and sent to the peer in an `error` reply); the
// message is one sentence a person can act on. ConfigError names the config field.

import { PdmError, UsageError } from "../../pdm/index.ts";

export type RefusalCode =
  | "no-certificate" // the peer sent no client certificate
  | "wrong-ca" // the chain does not lead to the deployment's CA
  | "cert-expired" // outside the certificate's validity period
  | "bad-certificate" // any other chain problem
  | "wrong-role" // the certificate's role may not do this
  | "wrong-address" // the connection does not come from an address the certificate names
  | "malformed-message" // not a frame, not JSON, or fields of the wrong type
  | "unexpected-message" // a valid message at the wrong point of the exchange
  | "unsupported-version" // protocol version other than ours
  | "no-common-suite" // hello offered no suite this writer accepts
  | "replayed-registration" // a KEM encapsulation or salt already used
  | "writer-client-not-allowed" // another writer client holds the deployment, or the config does not list it
  | "key-id-mismatch" // the two writers do not hold the same secret
  | "provision-unacknowledged" // a reader did not ack after 4 resends
  | "invalid-provision" // a provision a reader cannot install
  | "timeout" // the peer stopped answering
  | "closed" // the connection ended mid-exchange
  | "peer-error" // the peer refused us (its code is in the message)
  // group master mode (groups.md 1)
  | "release-not-allowed" // the member's certificate names no release, or one not in the master's allow-list
  | "replayed-join" // a second member-join on one connection
  | "group-full" // the group has its configured number of members
  | "membership-invalid" // a generation's certificate list fails its checks (CA, validity, role, order, us missing)
  | "heartbeat-missed" // a member or the master said nothing for `life`
  | "member-replaced" // the same member connected again: the older connection is closed
  | "no-connectivity-keys"; // a member asked a writer whose config gives no connectivity key set

export class RegistrationError extends PdmError {
  constructor(
    readonly code: RefusalCode,
    message: string,
    options?: { cause?: unknown; hint?: string },
  ) {
    super(message, options);
  }
}

/** A config file problem; the message starts with the field's path, e.g. `tls.cert`. */
export class ConfigError extends UsageError {
  constructor(
    readonly field: string,
    detail: string,
    readonly file?: string,
  ) {
    super(`${file ? `${file}: ` : ""}${field}: ${detail}`);
  }
}

// The only way senders should seal: a per-flow object that owns the Kri/Random
// Number state and draws the nonce itself, so no caller can pass a nonce twice.

import { sealProtectedOption } from "./aead.ts";
import type { PdmTimes } from "./option.ts";
import { SenderRotation, type SenderRotationOptions } from "./rotation.ts";

export interface SealedPacket {
  /** The 36-byte option, Type and Opt Data Len included. */
  option: Uint8Array;
  kri: number;
  randomNumber: number;
  fBit: 0 | 1;
}

export class ProtectedSealer {
  private readonly rotation: SenderRotation;
  private cachedKri = -1;
  private cachedKey: Uint8Array | undefined;

  /** `keyForKri` returns the STK of this flow for a Kri (derived or installed by the agent). */
  constructor(
    private readonly aead: number,
    private readonly keyForKri: (kri: number) => Uint8Array,
    rotation: SenderRotationOptions = {},
  ) {
    this.rotation = new SenderRotation(rotation);
  }

  /** Seal the next packet's fields; undefined once Kri is exhausted (keys must be renewed). */
  seal(fields: PdmTimes & { globalPointer: number }, nowNs: number): SealedPacket | undefined {
    const nonce = this.rotation.next(nowNs);
    if (!nonce) return undefined;
    if (nonce.kri !== this.cachedKri) {
      this.cachedKey = this.keyForKri(nonce.kri);
      this.cachedKri = nonce.kri;
    }
    const option = sealProtectedOption({ aead: this.aead, key: this.cachedKey!, ...nonce, fields });
    return { option, ...nonce };
  }
}

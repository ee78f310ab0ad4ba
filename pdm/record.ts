// The analyzer's input, whatever the source: one PDM-relevant packet as seen at
// some observation point. Captures (pcap/pcapng, live libpcap) and eBPF ring-buffer
// records both become PdmRecords, so the metrics code does not care where they came from.

import type { WireError } from "./errors.ts";
import type { AnyLayout, AnyPdmOption } from "./draft-layouts.ts";

export interface PdmRecord {
  /** Observation time, ns since the start of the input (exact, monotonic in practice). */
  timeNs: number;
  /** Where the sender's and receiver's 16-byte addresses are (usually the packet itself). */
  addresses: Uint8Array;
  srcOffset: number;
  dstOffset: number;
  /** The rest of the 5-tuple as the packet's sender sees it (wire.md section 3). */
  sport: number;
  dport: number;
  proto: number;
  /** The PDM option, if the packet carried a well-formed one. */
  pdm: AnyPdmOption | undefined;
  /** Set when the packet carried a malformed PDM option. */
  pdmError: WireError | undefined;
  /**
   * The layout on the wire, when it differs from `pdm`'s: a protected option the
   * kernel has already verified and opened reaches the analyzer (an eBPF event) with
   * its fields in the clear layout's shape.
   */
  wireLayout?: AnyLayout;
  /** Packet number in the input (1-based), for diagnostics. */
  number: number;
}

/** A record to refill for every packet (the hot paths reuse one rather than allocate). */
export function emptyPdmRecord(): PdmRecord {
  return {
    timeNs: 0,
    addresses: new Uint8Array(32),
    srcOffset: 0,
    dstOffset: 16,
    sport: 0,
    dport: 0,
    proto: 0,
    pdm: undefined,
    pdmError: undefined,
    number: 0,
  };
}

// One frame as a capture delivers it (a pcap/pcapng file, or libpcap live): what the
// capture readers produce and the analyzer consumes, whatever the source.

export interface CapturedPacket {
  /** Frame bytes: a view that is only valid during the callback. */
  readonly data: Buffer;
  /** The same bytes without making a view (the analyzer's hot path): buffer[start, end). */
  buffer: Buffer;
  start: number;
  end: number;
  originalLength: number;
  /** Capture time: whole seconds since the epoch and nanoseconds within the second. */
  tsSec: number;
  tsNsec: number;
  linkType: number;
  interfaceId: number;
  /** 1-based packet number, as Wireshark counts. */
  number: number;
}

// Big-endian integers in byte buffers: every PDM field is one (wire.md 2). Plain
// functions on Uint8Array, no DataView: the decoders call them for every packet.

export const u16 = (b: Uint8Array, i: number): number => (b[i]! << 8) | b[i + 1]!;

export const u32 = (b: Uint8Array, i: number): number =>
  b[i]! * 0x100_0000 + ((b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!);

export function put16(b: Uint8Array, i: number, v: number): void {
  b[i] = (v >>> 8) & 0xff;
  b[i + 1] = v & 0xff;
}

export function put32(b: Uint8Array, i: number, v: number): void {
  b[i] = (v >>> 24) & 0xff;
  b[i + 1] = (v >>> 16) & 0xff;
  b[i + 2] = (v >>> 8) & 0xff;
  b[i + 3] = v & 0xff;
}

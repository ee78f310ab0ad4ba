// Bytes as lowercase hex, for key ids, fingerprints and test output: one definition,
// a view of the bytes rather than a copy.

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

// Delta-time encoding of RFC 8250 (wire.md section 3).
//
// A (DELTA, SCALE) pair stands for DELTA x 2^SCALE attoseconds. To encode we keep
// the 16 most significant bits of the interval in attoseconds and count the
// discarded low bits in SCALE (truncating, never rounding up).
//
// Why no 128-bit arithmetic is needed: 1 ns = 10^9 as = 1953125 x 2^9 as, so an
// interval of N ns is (N x 1953125) << 9 attoseconds. The shift only moves SCALE,
// and N x 1953125 is split into two 32-bit limbs of N, each product fitting in
// 53 bits. The eBPF encoder in bpf/ uses the same decomposition.

/** 5^9: the odd part of 10^9. */
const NS_ODD_FACTOR = 1953125;
/** 2^9: the even part of 10^9. */
const NS_SHIFT = 9;
const TWO_POW_32 = 2 ** 32;

export interface EncodedDelta {
  /** 16-bit mantissa. */
  delta: number;
  /** 8-bit binary exponent, in powers of two attoseconds. */
  scale: number;
}

/** Largest interval that fits: 0xFFFF x 2^255 attoseconds. We accept any ns below 2^64. */
export const MAX_ENCODABLE_NS = 2n ** 64n - 1n;

/**
 * Encode an interval given in whole nanoseconds (number up to 2^53, or bigint up to 2^64).
 * Negative intervals are a caller bug (clocks must be monotonic) and throw RangeError.
 */
export function encodeDeltaNs(ns: number | bigint): EncodedDelta {
  if (typeof ns === "number") {
    if (!Number.isSafeInteger(ns) || ns < 0) {
      throw new RangeError(`interval must be a non-negative integer number of ns, got ${ns}`);
    }
    if (ns === 0) return { delta: 0, scale: 0 };
    if (ns < TWO_POW_32) return encodeOddProduct(ns * NS_ODD_FACTOR);
    return encodeDeltaNs(BigInt(ns));
  }
  if (ns < 0n || ns > MAX_ENCODABLE_NS) {
    throw new RangeError(`interval must be 0 .. 2^64-1 ns, got ${ns}`);
  }
  if (ns === 0n) return { delta: 0, scale: 0 };
  return encodeAttoseconds(ns * 1_000_000_000n);
}

/** Encode an interval given in attoseconds (exact, any size that fits SCALE <= 255). */
export function encodeAttoseconds(as: bigint): EncodedDelta {
  if (as < 0n) throw new RangeError(`interval must be non-negative, got ${as} as`);
  const bits = as.toString(2).length;
  if (as === 0n || bits <= 16) return { delta: Number(as), scale: 0 };
  const scale = bits - 16;
  if (scale > 255) throw new RangeError(`interval ${as} as does not fit SCALE <= 255`);
  return { delta: Number(as >> BigInt(scale)), scale };
}

/** x is N x 5^9 with x < 2^53; the interval is x << 9 attoseconds. */
function encodeOddProduct(x: number): EncodedDelta {
  const bits = bitLength(x);
  // x >= 1953125 (21 bits) whenever N >= 1, so at least 5 low bits of x are dropped.
  const drop = bits - 16;
  return { delta: Math.floor(x / 2 ** drop), scale: drop + NS_SHIFT };
}

function bitLength(x: number): number {
  // Exact for integers below 2^53: Math.log2 can be off by one near powers of two.
  let bits = Math.floor(Math.log2(x)) + 1;
  if (2 ** (bits - 1) > x) bits -= 1;
  else if (2 ** bits <= x) bits += 1;
  return bits;
}

/** Exact value of a (DELTA, SCALE) pair in attoseconds. */
export function decodeDeltaAttoseconds(delta: number, scale: number): bigint {
  return BigInt(delta) << BigInt(scale);
}

/**
 * Value of a (DELTA, SCALE) pair in nanoseconds, as a double (fractional below 1 ns).
 * Relative error is below 2^-52, far under the encoding's own 2^-15 truncation.
 */
export function decodeDeltaNs(delta: number, scale: number): number {
  return (delta * POW2[scale]!) / 1e9;
}

/** 2^0 .. 2^255, exact doubles: SCALE is one byte. */
const POW2 = Float64Array.from({ length: 256 }, (_, i) => 2 ** i);

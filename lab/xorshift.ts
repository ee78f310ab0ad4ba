// A reproducible random number generator for the lab's impairments (jitter, loss,
// tampering): the same seed gives the same run. xorshift32, numbers in [0, 1).

export function xorshift32(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

// Durations for people: the unit is chosen per value, three significant digits.

export function formatDuration(ns: number | undefined): string {
  if (ns === undefined || Number.isNaN(ns)) return "-";
  const sign = ns < 0 ? "-" : "";
  const a = Math.abs(ns);
  if (a < 1e3) return `${sign}${a < 10 ? a.toFixed(1) : Math.round(a)} ns`;
  if (a < 1e6) return `${sign}${sig3(a / 1e3)} µs`;
  if (a < 1e9) return `${sign}${sig3(a / 1e6)} ms`;
  return `${sign}${sig3(a / 1e9)} s`;
}

function sig3(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

export function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}

// Runs a delay bridge between two interfaces until SIGINT/SIGTERM (see
// lab/delay-bridge.ts). Prints "bridging" when ready and a count at the end.
// Usage: node --import tsx scripts/delay-bridge.ts LEFT RIGHT DELAY_MS [JITTER_MS] [LOSS] [TAMPER_EVERY]
import { startDelayBridge } from "../lab/index.ts";

const [left, right, delay, jitter = "0", loss = "0", tamperEvery = "0"] = process.argv.slice(2);
if (!left || !right || delay === undefined) {
  process.stderr.write("usage: delay-bridge LEFT RIGHT DELAY_MS [JITTER_MS] [LOSS_FRACTION]\n");
  process.exit(2);
}
const bridge = startDelayBridge({
  left,
  right,
  delayMs: Number(delay),
  jitterMs: Number(jitter),
  loss: Number(loss),
  tamperEvery: Number(tamperEvery) || undefined,
});
process.stdout.write(`bridging ${left} <-> ${right}, ${delay} ms each way\n`);
const stop = (): void => {
  bridge.close();
  const t = bridge.tampered();
  process.stdout.write(
    `forwarded ${bridge.forwarded()}, dropped ${bridge.dropped()}, tampered ${t.leftToRight} left to right and ${t.rightToLeft} right to left\n`,
  );
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

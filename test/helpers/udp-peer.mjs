// A UDP request/response pair for the data-path tests, in plain JavaScript so it
// starts fast inside a namespace.
//   node udp-peer.mjs serve PORT DELAY_MS      answers each datagram after DELAY_MS;
//                                             prints "ready", then one line per answer
//                                             with the hold time it measured (ns)
//   node udp-peer.mjs ask ADDR PORT N GAP_MS [SIZE [PAUSE_AFTER PAUSE_MS [LOST_MS]]]
//                                             sends N requests one at a time from one
//                                             socket, waits for each answer (and PAUSE_MS
//                                             after answer PAUSE_AFTER; LOST_MS, 2000 by
//                                             default, for an answer that never comes),
//                                             prints a JSON summary
import dgram from "node:dgram";

const [mode, ...args] = process.argv.slice(2);
if (mode === "serve") {
  const [port, delayMs] = args.map(Number);
  const sock = dgram.createSocket({ type: "udp6", ipv6Only: true });
  sock.on("message", (msg, rinfo) => {
    const t0 = process.hrtime.bigint();
    setTimeout(() => {
      sock.send(msg, rinfo.port, rinfo.address, () => {
        process.stdout.write(`held ${process.hrtime.bigint() - t0}\n`);
      });
    }, delayMs);
  });
  sock.bind(port, "::", () => process.stdout.write("ready\n"));
} else if (mode === "ask") {
  const [addr, portText, nText, gapText, sizeText, pauseAfterText, pauseMsText, lostMsText] = args;
  const port = Number(portText),
    n = Number(nText),
    gap = Number(gapText),
    size = Number(sizeText ?? 64);
  const pauseAfter = Number(pauseAfterText ?? 0),
    pauseMs = Number(pauseMsText ?? 0),
    lostMs = Number(lostMsText ?? 2000);
  const sock = dgram.createSocket({ type: "udp6", ipv6Only: true });
  let answered = 0;
  let sent = 0;
  const rtts = [];
  let t0 = 0n;
  let timer;
  let answeredSeq = 0;
  const next = () => {
    if (sent === n) {
      process.stdout.write(JSON.stringify({ sent, answered, rtts }) + "\n");
      sock.close();
      return;
    }
    sent += 1;
    t0 = process.hrtime.bigint();
    sock.send(Buffer.alloc(size, sent & 0xff), port, addr);
    timer = setTimeout(next, lostMs); // a lost answer: go on
  };
  sock.on("message", (msg) => {
    // An answer that comes after its request was given up (or a copy of one) is not the current one's.
    if (msg[0] !== (sent & 0xff) || msg.length !== size || answeredSeq === sent) return;
    answeredSeq = sent;
    clearTimeout(timer);
    answered += 1;
    rtts.push(Number(process.hrtime.bigint() - t0));
    setTimeout(next, answered === pauseAfter ? pauseMs : gap);
  });
  sock.bind(0, "::", next);
}

// A TCP bulk sender and sink for the data-path tests, in plain JavaScript so it
// starts fast inside a namespace.
//   node tcp-peer.mjs sink PORT            prints "ready"; for one connection prints
//                                          "received N" when the sender closes
//   node tcp-peer.mjs send ADDR PORT BYTES  sends BYTES and closes; prints "sent N"
import net from "node:net";

const [mode, ...args] = process.argv.slice(2);
if (mode === "sink") {
  const server = net.createServer((sock) => {
    let n = 0;
    sock.on("data", (d) => (n += d.length));
    sock.on("end", () => {
      process.stdout.write(`received ${n}\n`);
      sock.end();
      server.close();
    });
  });
  server.listen(Number(args[0]), "::", () => process.stdout.write("ready\n"));
} else if (mode === "send") {
  const [addr, port, bytesText] = args;
  const total = Number(bytesText);
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  const sock = net.connect(Number(port), addr, () => {
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return sock.once("drain", pump);
      }
      sock.end(() => process.stdout.write(`sent ${sent}\n`));
    };
    pump();
  });
  sock.on("error", (e) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  });
}

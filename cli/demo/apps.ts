// The demo's workload: ordinary applications that know nothing of PDM, run inside
// the host namespaces by the demo.
//
//   apps.ts serve HTTP_HOLD_MS UDP_HOLD_MS
//       An HTTP server on port 8080 and a UDP request/response service on port 7000,
//       each holding every request for a known time before answering: that hold is
//       the server delay the demo injects. Prints "ready"; on SIGTERM prints a JSON
//       summary (requests served, median hold actually measured) and exits.
//   apps.ts client SERVER_ADDR SECONDS
//       For SECONDS: HTTP GETs over one keep-alive connection every 100 ms, UDP
//       requests every 100 ms, ICMPv6 echo (ping) every 200 ms, all to SERVER_ADDR.
//       Prints a JSON summary of what was sent and answered.
//
// Holds are exact to a few microseconds: the timer sleeps to 1 ms before the end and
// the rest is spun out, because Node's timers are only millisecond-accurate.

import { spawn } from "node:child_process";
import dgram from "node:dgram";
import http from "node:http";
import { DEMO_PORTS } from "./plan.ts";

const nowNs = (): bigint => process.hrtime.bigint();

function hold(ms: number, then: (heldNs: number) => void): void {
  const start = nowNs();
  const end = start + BigInt(Math.round(ms * 1e6));
  const spin = (): void => {
    while (nowNs() < end) {
      // spin out the last millisecond
    }
    then(Number(nowNs() - start));
  };
  if (ms > 1.5) setTimeout(spin, ms - 1);
  else spin();
}

function median(xs: number[]): number {
  return xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : 0;
}

function serve(httpHoldMs: number, udpHoldMs: number): void {
  const holds = { http: [] as number[], udp: [] as number[] };
  const server = http.createServer({ noDelay: true, keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    req.on("end", () =>
      hold(httpHoldMs, (ns) => {
        holds.http.push(ns);
        res.writeHead(200, { "content-type": "text/plain", "content-length": "3" });
        res.end("ok\n");
      }),
    );
  });
  const udp = dgram.createSocket({ type: "udp6", ipv6Only: true });
  udp.on("message", (msg, from) =>
    hold(udpHoldMs, (ns) => udp.send(msg, from.port, from.address, () => holds.udp.push(ns))),
  );
  let listening = 0;
  const ready = (): void => {
    if (++listening === 2) process.stdout.write("ready\n");
  };
  server.listen(DEMO_PORTS.http, "::", ready);
  udp.bind(DEMO_PORTS.udp, "::", ready);
  process.on("SIGTERM", () => {
    process.stdout.write(
      `${JSON.stringify({ http: { served: holds.http.length, holdP50Ns: median(holds.http) }, udp: { served: holds.udp.length, holdP50Ns: median(holds.udp) } })}\n`,
    );
    process.exit(0);
  });
}

async function client(serverAddr: string, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  const httpLoop = async (): Promise<{ sent: number; ok: number }> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let sent = 0;
    let ok = 0;
    while (Date.now() < deadline) {
      sent += 1;
      ok += await new Promise<number>((resolve) => {
        const req = http.get(
          { host: serverAddr, port: DEMO_PORTS.http, path: `/item/${sent}`, agent, timeout: 3000 },
          (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode === 200 ? 1 : 0));
          },
        );
        req.setNoDelay(true);
        req.on("timeout", () => req.destroy());
        req.on("error", () => resolve(0));
      });
      await sleep(100);
    }
    agent.destroy();
    return { sent, ok };
  };

  const udpLoop = async (): Promise<{ sent: number; answered: number }> => {
    const sock = dgram.createSocket({ type: "udp6", ipv6Only: true });
    await new Promise<void>((r) => sock.bind(0, "::", r));
    let sent = 0;
    let answered = 0;
    let waiting: ((answered: boolean) => void) | undefined;
    sock.on("message", () => waiting?.(true));
    while (Date.now() < deadline) {
      sent += 1;
      const got = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 1000); // a lost request or answer: go on
        waiting = (v) => {
          clearTimeout(timer);
          resolve(v);
        };
        sock.send(Buffer.alloc(64, sent & 0xff), DEMO_PORTS.udp, serverAddr);
      });
      if (got) answered += 1;
      await sleep(100);
    }
    sock.close();
    return { sent, answered };
  };

  const pingLoop = (): Promise<{ sent: number; answered: number }> =>
    new Promise((resolve) => {
      const count = Math.max(1, Math.floor(seconds * 5));
      const ping = spawn(
        "ping",
        ["-6", "-n", "-q", "-i", "0.2", "-c", String(count), "-w", String(Math.ceil(seconds) + 2), serverAddr],
        { stdio: ["ignore", "pipe", "ignore"] },
      );
      let out = "";
      ping.stdout.on("data", (d: Buffer) => (out += d.toString()));
      ping.on("exit", () => {
        const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
        resolve({ sent: Number(m?.[1] ?? 0), answered: Number(m?.[2] ?? 0) });
      });
    });

  const [httpResult, udpResult, pingResult] = await Promise.all([httpLoop(), udpLoop(), pingLoop()]);
  process.stdout.write(`${JSON.stringify({ http: httpResult, udp: udpResult, ping: pingResult })}\n`);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "serve") serve(Number(args[0]), Number(args[1]));
else if (mode === "client") await client(args[0]!, Number(args[1]));
else {
  process.stderr.write("usage: apps.ts serve HTTP_HOLD_MS UDP_HOLD_MS | client SERVER_ADDR SECONDS\n");
  process.exit(2);
}

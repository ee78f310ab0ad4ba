// Inject Ethernet frames on an interface through libpcap, for tests that need real
// bytes on a real interface without a sending application.
//   node inject-frames.mjs IFNAME < frames     one frame per line, in hex
// Exits once every frame is sent: node_pcap's close leaves its poll handle running,
// so a long-lived test process would never finish.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const pcap = createRequire(import.meta.url)("pcap");
const session = pcap.createSession(process.argv[2], { filter: "udp port 1" }); // receives nothing
const frames = readFileSync(0, "utf8").split("\n").filter(Boolean);
for (const hex of frames) session.inject(Buffer.from(hex, "hex"));
process.stdout.write(`${frames.length} injected\n`);
process.exit(0);

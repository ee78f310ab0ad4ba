#!/usr/bin/env node
// Installed entry point: runs the TypeScript CLI through tsx's loader.
import { register } from "tsx/esm/api";
register();
const { main } = await import("../cli/main.ts");
// Exit explicitly: native handles (libpcap, ring buffers) may outlive a finished
// command. stdout/stderr are synchronous for files and pipes on Linux, so no output is lost.
process.exit(await main(process.argv.slice(2)));

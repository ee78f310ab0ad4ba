// Starts a worker from TypeScript sources (when the CLI runs through tsx rather than
// the dist/ bundle): worker threads do not inherit the parent's tsx loader.
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
await import(workerData.entry);

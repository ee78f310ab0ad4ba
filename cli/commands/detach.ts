// pdm detach: undo what pdm attach did on an interface.

import { Command } from "@commander-js/extra-typings";
import { detach } from "../../probes/datapath/index.ts";

export function detachCommand() {
  return new Command("detach")
    .summary("remove the PDM programs from an interface")
    .description(
      `Remove what \`pdm attach\` added to an interface: its tc filters, the clsact
qdisc if attach created it and nothing else uses it, the route MTU changes, the
offload change, and the pinned maps under /sys/fs/bpf/pdm/<interface>/.`,
    )
    .requiredOption("-i, --interface <name>", "network interface")
    .option("--force", "also clean up after an attach made in a network namespace that no longer exists")
    .action((opts) => {
      const r = detach(opts.interface, { force: opts.force });
      process.stdout.write(
        `detached from ${r.ifname}: ${r.filtersRemoved} tc filters removed${r.qdiscRemoved ? ", clsact qdisc removed" : ""}${r.routesRestored ? `, ${r.routesRestored} route MTUs restored` : ""}${r.offloadRestored ? ", offload restored" : ""}${r.pinsRemoved ? ", pins removed" : ""}\n`,
      );
      for (const p of r.problems) process.stdout.write(`  note: ${p}\n`);
    });
}

// The flow rule (pdm/flow.ts), which the analyzer, the key installer and the kernel's
// flow key all follow: the two directions of a conversation pair up, for TCP, UDP and
// ICMPv6 echo (request with reply, by identifier), and every view of a flow (the
// analyzer's conversation hash, the kernel's key ports, the ends shown to a user)
// agrees on which packets belong together.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  conversationPorts,
  echoAnswerType,
  echoWord,
  endpointPorts,
  flowKey,
  flowKeyPorts,
  formatFlow,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  isEchoReply,
  parseIpv6Address,
  reverseFlow,
  transportName,
  type FlowTuple,
} from "../../pdm/index.ts";

const address = fc.uint8Array({ minLength: 16, maxLength: 16 });
const port = fc.integer({ min: 0, max: 65535 });
const transportTuple = fc.record({
  src: address,
  dst: address,
  sport: port,
  dport: port,
  proto: fc.constantFrom(IPPROTO_TCP, IPPROTO_UDP),
});
const echoTuple = fc.record({
  src: address,
  dst: address,
  sport: fc.constantFrom(echoWord(ICMPV6_ECHO_REQUEST), echoWord(ICMPV6_ECHO_REPLY)),
  dport: port,
  proto: fc.constant(IPPROTO_ICMPV6),
});
const anyTuple = fc.oneof(transportTuple, echoTuple);

describe("the flow rule", () => {
  it("the other end's tuple of the other end's tuple is the tuple itself", () => {
    fc.assert(fc.property(anyTuple, (f) => assert.deepEqual(reverseFlow(reverseFlow(f)), { ...f })));
  });

  it("an echo request pairs with the reply of the same identifier, addresses swapped", () => {
    const request: FlowTuple = {
      src: parseIpv6Address("fd00::1"),
      dst: parseIpv6Address("fd00::2"),
      sport: echoWord(ICMPV6_ECHO_REQUEST),
      dport: 0x4242,
      proto: IPPROTO_ICMPV6,
    };
    const reply = reverseFlow(request);
    assert.deepEqual(reply, { ...request, src: request.dst, dst: request.src, sport: 129 << 8 });
    assert.equal(isEchoReply(reply), true);
    assert.equal(isEchoReply(request), false);
    assert.equal(echoAnswerType(ICMPV6_ECHO_REPLY), ICMPV6_ECHO_REQUEST);
    assert.equal(formatFlow(request), "[fd00::1]:32768 -> [fd00::2]:16962 icmpv6");
    // Any other ICMPv6 message keeps its type: it has no answer PDM pairs it with.
    const other = { ...request, sport: 1 << 8 };
    assert.equal(reverseFlow(other).sport, 1 << 8);
  });

  it("both directions hash alike, and distinct directions have distinct keys", () => {
    fc.assert(
      fc.property(anyTuple, (f) => {
        const r = reverseFlow(f);
        assert.equal(conversationPorts(f.proto, f.sport, f.dport), conversationPorts(r.proto, r.sport, r.dport));
        if (f.sport !== r.sport || f.dport !== r.dport || flowKey({ ...f, src: f.dst, dst: f.src }) !== flowKey(f)) {
          assert.notEqual(flowKey(f), flowKey(r));
        }
      }),
    );
  });

  it("the kernel keys a flow alike on the host that sends a tuple and on the one that receives its answer", () => {
    fc.assert(
      fc.property(anyTuple, (f) => {
        assert.deepEqual(flowKeyPorts(f, "sender"), flowKeyPorts(reverseFlow(f), "receiver"));
      }),
    );
    fc.assert(
      fc.property(echoTuple, (f) => {
        // an echo flow's key is its identifier alone, whichever the direction
        assert.deepEqual(flowKeyPorts(f, "sender"), { local: f.dport, remote: f.dport });
      }),
    );
  });

  it("a user sees TCP/UDP ports, and an echo's identifier on the client's side", () => {
    fc.assert(
      fc.property(transportTuple, (f) =>
        assert.deepEqual(endpointPorts(f), { clientPort: f.sport, serverPort: f.dport }),
      ),
    );
    fc.assert(
      fc.property(echoTuple, (f) => assert.deepEqual(endpointPorts(f), { clientPort: f.dport, serverPort: 0 })),
    );
    assert.deepEqual([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, 132].map(transportName), [
      "tcp",
      "udp",
      "icmpv6",
      undefined,
    ]);
  });
});

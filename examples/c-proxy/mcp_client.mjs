// mcp_client.mjs - an MCP client on the official SDK (@modelcontextprotocol/sdk)
// (used by scripts/demo.sh, the e2e tests and the proxy benchmark)
// that runs one fixed session against a stdio server and prints what it got.
//
//   node mcp_client.mjs [--pings N] -- COMMAND [ARGS...]
//
// COMMAND is the server itself (server-everything) or tape-proxy in front
// of it: the printed JSON must be the same either way. The session:
// initialize, tools/list, tools/call echo, get-sum, a sampling request the
// server sends back to us (trigger-sampling-request), a call of a tool that
// does not exist (fails: isError), a method that does not exist (a JSON-RPC
// error), resources/list, prompts/list, ping. --pings N
// adds N pings and prints their round-trip times (the benchmark uses it).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CreateMessageRequestSchema, EmptyResultSchema } from "@modelcontextprotocol/sdk/types.js";

const argv = process.argv.slice(2);
let pings = 0;
let only = null;
while (argv.length > 0 && argv[0] !== "--") {
  const a = argv.shift();
  if (a === "--pings") pings = Number(argv.shift());
  else if (a === "--only-pings") only = "pings";
  else {
    console.error(`mcp_client.mjs: unknown option ${a}`);
    process.exit(64);
  }
}
argv.shift();
if (argv.length === 0 || !Number.isInteger(pings) || pings < 0) {
  console.error("usage: node mcp_client.mjs [--pings N] [--only-pings] -- COMMAND [ARGS...]");
  process.exit(64);
}

const transport = new StdioClientTransport({
  command: argv[0],
  args: argv.slice(1),
  env: process.env, // the SDK passes only a few variables by default
  stderr: "inherit",
});
const client = new Client(
  { name: "tapestore-e2e-client", version: "1.2.3" },
  { capabilities: { sampling: {} } },
);
// The server's sampling/createMessage request, answered with a fixed text.
client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
  model: "e2e-fixed-model",
  role: "assistant",
  content: { type: "text", text: `sampled: ${req.params.messages.length} message(s)` },
}));

// An error as data, so that both runs can be compared.
async function outcome(fn) {
  try {
    return { result: await fn() };
  } catch (e) {
    return { error: { code: e.code ?? null, message: String(e.message) } };
  }
}

const out = {};
await client.connect(transport);
out.initialize = {
  serverVersion: client.getServerVersion(),
  serverCapabilities: client.getServerCapabilities(),
};
if (only !== "pings") {
  out.tools = await outcome(() => client.listTools());
  out.echo = await outcome(() =>
    client.callTool({ name: "echo", arguments: { message: "hello through the pipes" } }),
  );
  out.sum = await outcome(() => client.callTool({ name: "get-sum", arguments: { a: 2, b: 40 } }));
  out.sampling = await outcome(() =>
    client.callTool({
      name: "trigger-sampling-request",
      arguments: { prompt: "say hi", maxTokens: 5 },
    }),
  );
  out.missing = await outcome(() => client.callTool({ name: "no-such-tool", arguments: {} }));
  // A method the server does not have: a JSON-RPC error response.
  out.unknown_method = await outcome(() =>
    client.request({ method: "no/such/method", params: {} }, EmptyResultSchema),
  );
  out.resources = await outcome(() => client.listResources());
  out.prompts = await outcome(() => client.listPrompts());
  out.ping = await outcome(() => client.ping());
}
if (pings > 0) {
  const rtt = [];
  for (let i = 0; i < pings; i++) {
    const t0 = process.hrtime.bigint();
    await client.ping();
    rtt.push(Number(process.hrtime.bigint() - t0) / 1000); // microseconds
  }
  out.ping_rtt_us = rtt;
}
await client.close();
process.stdout.write(JSON.stringify(out) + "\n");

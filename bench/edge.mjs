// Edge throughput benchmark: Keyward's Worker against the no-op floor and a hand-written JS peer,
// on workerd itself (through Miniflare's direct sockets: no wrangler, no node proxy in the path).
//
// Run: `cargo xtask bench` (builds the edge first), or by hand after `cargo xtask build-edge`:
//   node bench/edge.mjs --out target/keyward/bench-edge.json [--rounds 7] [--duration 5]
//                       [--connections 4] [--threads 1]
//   By hand, for work on the edge (never by `cargo xtask bench`):
//     --only id,id     measures only these variants (ids below) and prints them; writes nothing
//     --profile id     samples workerd's CPU profile (V8 inspector) while wrk drives that variant
//                      and prints the functions with the most self and total time; writes nothing.
//                      Build with KEYWARD_EDGE_NAMES=1 `cargo xtask build-edge` so the WASM
//                      functions keep their names.
// Needs `wrk` on PATH (`cargo xtask bench` installs it with apt when missing).
//
// What it does:
// 1. starts one workerd (Miniflare) serving these Workers, each on its own direct socket:
//    `noop` (200, the floor; it gets the very request the verify variants send, a POST with the
//    JSON body, and does not read it), `body-floor` (reads the JSON body and answers a fixed
//    verdict: the floor of any verify API), `passthrough` (forwards to the origin with one
//    header stripped: the floor of any proxy), `origin` (the noop code, the proxy's upstream),
//    `keyward` (the built edge/build/worker/shim.mjs + index_bg.wasm, the release bundle),
//    `js-peer` (no cache) and `js-peer-cached` (Keyward's isolate cache policy: found 5 s,
//    unknown 2 s), `usage-sink` (accepts Keyward's signed usage batches: usage reporting is on,
//    as deployed), and counting twins of `keyward` and `js-peer` (bench/workers/count-kv.js
//    around the same code) that report their KV reads per request and Durable Object calls.
//    All share one local KV namespace.
// 2. provisions keys through Keyward's signed `POST /_keyward/sync` (the JS peers read the very
//    same `h:{sha256}` entries): a valid key without limits; the same kind of key with two rate
//    limits (per minute, per 31 days: large enough never to refuse here) and credits (a credit
//    op `set` in the same batch); and a key with two limits and few credits for the exactness
//    phase;
// 3. counts KV reads per request on each path through the counting twins, and Durable Object
//    calls per request for the limited key under wrk load;
// 4. exactness: many concurrent clients spend the few-credits key through the verify API and
//    the proxy together; exactly its credits are admitted;
// 5. runs wrk against every variant, compared pairs back to back and the order reversed every
//    other round, and writes medians over the rounds (requests/s, p50, p99) with the rounds
//    themselves (the report's ratios are medians of per-round ratios);
// 6. measures latency one request at a time (nothing queues; every request timed by a node
//    client) for the floors, Keyward and the peer: the p99 a Worker adds over the no-op.

import { spawn } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Log, LogLevel, Miniflare } from "miniflare";

const startedAt = performance.now();
const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..");
const args = parseArgs(process.argv.slice(2));
// Seven rounds: on a 2-core machine a pair's per-round ratio swings by a quarter, and the
// median of seven moves less than the median of five (about 2.5 more minutes).
const ROUNDS = Number(args.rounds ?? 7);
const DURATION_S = Number(args.duration ?? 5);
const CONNECTIONS = Number(args.connections ?? 4);
const THREADS = Number(args.threads ?? 1);
const OUT = resolve(args.out ?? join(repo, "target/keyward/bench-edge.json"));
const BUILD = resolve(args.build ?? join(repo, "edge/build"));
const SYNC_SECRET = randomBytes(16).toString("hex");
const USAGE_SECRET = randomBytes(16).toString("hex");
/** Credits of the exactness key: fewer than the requests its phase sends. */
const EXACT_CREDITS = Number(args["exact-credits"] ?? 2000);
const EXACT_REQUESTS = Number(args["exact-requests"] ?? 3000);
const EXACT_CLIENTS = 16;
const COMPAT_DATE = "2026-04-01";
const KV_ID = "keyward-bench-keys";

// ---- keys in Keyward's format (DESIGN.md: `{prefix}_{random32}{crc32 base62, 6}`) ----

const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(text) {
  let c = 0xffffffff;
  for (const b of Buffer.from(text, "utf8")) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function base62Fixed(n, width) {
  let out = "";
  let v = BigInt(n);
  while (v > 0n) {
    out = B62[Number(v % 62n)] + out;
    v /= 62n;
  }
  return out.padStart(width, "0");
}
function randomB62(len) {
  return Array.from(randomBytes(len), (b) => B62[b % 62]).join("");
}
function newKey(prefix = "kw") {
  const body = `${prefix}_${randomB62(32)}`;
  return body + base62Fixed(crc32(body), 6);
}
/** The same key with one character of its random part changed: the checksum no longer matches. */
function garble(key) {
  const i = 10;
  return key.slice(0, i) + (key[i] === "A" ? "B" : "A") + key.slice(i + 1);
}
const sha256Hex = (text) => createHash("sha256").update(text).digest("hex");

// ---- helpers ----

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) out[argv[i].slice(2)] = argv[i + 1], i++;
  }
  return out;
}

const givenPorts = new Set();

/** A port free now and not given before in this run (the kernel may hand a just-closed port out
 * again, and two workers on one port fail Miniflare's start with ERR_ADDRESS_IN_USE). */
async function freePort() {
  for (;;) {
    const port = await new Promise((ok, fail) => {
      const srv = createServer();
      srv.listen(0, "127.0.0.1", () => {
        const { port } = srv.address();
        srv.close(() => ok(port));
      });
      srv.on("error", fail);
    });
    if (!givenPorts.has(port)) {
      givenPorts.add(port);
      return port;
    }
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---- the workers ----

const read = (p) => readFileSync(p);
const noopSrc = read(join(here, "workers/noop.js"), "utf8");
const bodyFloorSrc = read(join(here, "workers/body-floor.js"), "utf8");
const peerSrc = read(join(here, "workers/js-peer.js"), "utf8");
const passthroughSrc = read(join(here, "workers/passthrough.js"), "utf8");
const sinkSrc = read(join(here, "workers/usage-sink.js"), "utf8");
const countSrc = read(join(here, "workers/count-kv.js"), "utf8");
const edgeIndex = read(join(BUILD, "index.js"));
const edgeWasm = read(join(BUILD, "index_bg.wasm"));
const edgeShim = read(join(BUILD, "worker/shim.mjs"));

const ports = {};
for (const name of ["noop", "bodyFloor", "passthrough", "origin", "sink", "keyward", "keywardCounted", "peer", "peerCached", "peerCounted"]) {
  ports[name] = await freePort();
}
const originUrl = `http://127.0.0.1:${ports.origin}`;
const sinkUrl = `http://127.0.0.1:${ports.sink}/v1/usage`;
const direct = (port) => [{ host: "127.0.0.1", port }];
const V = "/bench"; // virtual module root

function keywardWorker(name, port, counted) {
  const modules = counted
    ? [
        // The counting wrapper around the same entry wrangler loads (the shim, which imports
        // ../index.js), so the verify API's synchronous lane is counted too.
        { type: "ESModule", path: `${V}/worker/entry.js`, contents: `${countSrc}\nexport { Allowance, KvWriter } from "./target.js";\n` },
        { type: "ESModule", path: `${V}/worker/target.js`, contents: edgeShim },
        { type: "ESModule", path: `${V}/index.js`, contents: edgeIndex },
        { type: "CompiledWasm", path: `${V}/index_bg.wasm`, contents: edgeWasm },
      ]
    : [
        // What wrangler bundles: main = build/worker/shim.mjs, which re-exports ../index.js.
        { type: "ESModule", path: `${V}/worker/shim.mjs`, contents: edgeShim },
        { type: "ESModule", path: `${V}/index.js`, contents: edgeIndex },
        { type: "CompiledWasm", path: `${V}/index_bg.wasm`, contents: edgeWasm },
      ];
  return {
    name,
    modules,
    modulesRoot: V,
    compatibilityDate: COMPAT_DATE,
    // The values edge/wrangler.toml ships with, except the origin, the secrets and the usage
    // endpoint: usage reporting is on, to the sink, as a deployment has it.
    bindings: {
      ORIGIN_URL: originUrl,
      ROUTE_SCOPES: "",
      USAGE_URL: sinkUrl,
      USAGE_SECRET,
      CACHE_TTL_S: "5",
      NEGATIVE_CACHE_TTL_S: "2",
      USAGE_FLUSH_S: "5",
      SYNC_SECRET,
    },
    kvNamespaces: { KV: KV_ID },
    durableObjects: {
      ALLOWANCE: { className: "Allowance", useSQLite: true },
      KV_WRITER: { className: "KvWriter", useSQLite: true },
    },
    unsafeDirectSockets: direct(port),
  };
}

function peerWorker(name, port, counted, cached = false) {
  const modules = counted
    ? [
        { type: "ESModule", path: `${V}/entry.js`, contents: countSrc },
        { type: "ESModule", path: `${V}/target.js`, contents: peerSrc },
      ]
    : [{ type: "ESModule", path: `${V}/js-peer.js`, contents: peerSrc }];
  return {
    name,
    modules,
    modulesRoot: V,
    compatibilityDate: COMPAT_DATE,
    bindings: cached ? { ORIGIN_URL: originUrl, CACHE_TTL_S: "5", NEGATIVE_CACHE_TTL_S: "2" } : { ORIGIN_URL: originUrl },
    kvNamespaces: { KV: KV_ID },
    unsafeDirectSockets: direct(port),
  };
}

const stateDir = mkdtempSync(join(tmpdir(), "keyward-bench-"));
const INSPECTOR_PORT = args.profile ? await freePort() : undefined;
const mf = new Miniflare({
  log: new Log(LogLevel.WARN),
  inspectorPort: INSPECTOR_PORT,
  cf: false, // no fetch of Request.cf from the internet
  host: "127.0.0.1",
  port: await freePort(),
  kvPersist: join(stateDir, "kv"),
  durableObjectsPersist: join(stateDir, "do"),
  workers: [
    {
      name: "noop",
      modules: [{ type: "ESModule", path: `${V}/noop.js`, contents: noopSrc }],
      modulesRoot: V,
      compatibilityDate: COMPAT_DATE,
      unsafeDirectSockets: direct(ports.noop),
    },
    {
      name: "body-floor",
      modules: [{ type: "ESModule", path: `${V}/body-floor.js`, contents: bodyFloorSrc }],
      modulesRoot: V,
      compatibilityDate: COMPAT_DATE,
      unsafeDirectSockets: direct(ports.bodyFloor),
    },
    {
      name: "passthrough",
      modules: [{ type: "ESModule", path: `${V}/passthrough.js`, contents: passthroughSrc }],
      modulesRoot: V,
      compatibilityDate: COMPAT_DATE,
      bindings: { ORIGIN_URL: originUrl },
      unsafeDirectSockets: direct(ports.passthrough),
    },
    {
      name: "usage-sink",
      modules: [{ type: "ESModule", path: `${V}/usage-sink.js`, contents: sinkSrc }],
      modulesRoot: V,
      compatibilityDate: COMPAT_DATE,
      bindings: { USAGE_SECRET },
      unsafeDirectSockets: direct(ports.sink),
    },
    {
      name: "origin",
      modules: [{ type: "ESModule", path: `${V}/noop.js`, contents: noopSrc }],
      modulesRoot: V,
      compatibilityDate: COMPAT_DATE,
      unsafeDirectSockets: direct(ports.origin),
    },
    keywardWorker("keyward", ports.keyward, false),
    keywardWorker("keyward-counted", ports.keywardCounted, true),
    peerWorker("js-peer", ports.peer, false),
    peerWorker("js-peer-cached", ports.peerCached, false, true),
    peerWorker("js-peer-counted", ports.peerCounted, true),
  ],
});

let exitCode = 0;
try {
  await mf.ready;
  const url = (name) => `http://127.0.0.1:${ports[name]}`;

  // ---- provision the keys through the signed sync route ----
  const valid = newKey();
  const garbage = garble(valid);
  const unknown = newKey();
  const limited = newKey(); // two limits and credits, never refused during the run
  const exact = newKey(); // two limits and EXACT_CREDITS credits
  const now = Math.floor(Date.now() / 1000);
  const entryOf = (keyId, extra = {}) => ({
    schema: 1,
    version: 1,
    key_id: keyId,
    workspace: "bench",
    owner_id: "user_bench",
    prefix: "kw",
    scopes: ["items.read"],
    status: "active",
    expires_at: now + 30 * 24 * 3600,
    retires_at: null,
    allowed_ips: [],
    rate_limit: null,
    ...extra,
  });
  // A plan as sold: a per-minute and a per-month limit (31 days), both far above what this run
  // sends, so they count every request but never refuse.
  const limits = [
    { name: "per_minute", limit: 100_000_000, period_s: 60 },
    { name: "per_month", limit: 4_000_000_000, period_s: 2_678_400 },
  ];
  const keyIds = { valid: `key_01${randomB62(20)}`, limited: `key_01${randomB62(20)}`, exact: `key_01${randomB62(20)}` };
  const creditSet = (keyId, value) => ({ target: { kind: "key", workspace: "bench", key_id: keyId }, seq: 1, op: "set", value, at: now });
  const batch = JSON.stringify({
    items: [
      { hash: sha256Hex(valid), entry: entryOf(keyIds.valid) },
      { hash: sha256Hex(limited), entry: entryOf(keyIds.limited, { rate_limits: limits, credited: true }) },
      { hash: sha256Hex(exact), entry: entryOf(keyIds.exact, { rate_limits: limits, credited: true }) },
    ],
    credit_ops: [creditSet(keyIds.limited, 1_000_000_000), creditSet(keyIds.exact, EXACT_CREDITS)],
  });
  // Each Keyward Worker has its own Allowance objects: the credit ops go to both.
  for (const target of ["keyward", "keywardCounted"]) {
    const ts = Math.floor(Date.now() / 1000);
    const sig = "v1=" + createHmac("sha256", SYNC_SECRET).update(`${ts}.`).update(batch).digest("hex");
    const synced = await fetch(`${url(target)}/_keyward/sync`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-keyward-timestamp": String(ts), "x-keyward-signature": sig },
      body: batch,
    });
    const syncText = await synced.text();
    const answer = synced.status === 200 ? JSON.parse(syncText) : null;
    if (answer?.credit_outcomes?.join() !== "applied,applied") {
      throw new Error(`sync to ${target} answered ${synced.status}: ${syncText}`);
    }
  }

  // ---- sanity: every variant answers what it should ----
  const verifyBody = (key) => JSON.stringify({ key });
  const post = (base, key) =>
    fetch(`${base}/v1/keys/verify`, { method: "POST", headers: { "content-type": "application/json" }, body: verifyBody(key) });
  const get = (base, key) => fetch(`${base}/v1/items/1`, { headers: { authorization: `Bearer ${key}` } });
  const expectations = [
    ["keyward verify valid", () => post(url("keyward"), valid), 200, '"VALID"'],
    ["keyward verify garbage", () => post(url("keyward"), garbage), 200, '"MALFORMED"'],
    ["keyward verify unknown", () => post(url("keyward"), unknown), 200, '"NOT_FOUND"'],
    ["keyward proxy valid", () => get(url("keyward"), valid), 200, "ok"],
    ["keyward proxy garbage", () => get(url("keyward"), garbage), 401, ""],
    ["keyward verify limited", () => post(url("keyward"), limited), 200, '"VALID"'],
    ["keyward proxy limited", () => get(url("keyward"), limited), 200, "ok"],
    ["js-peer-cached verify valid", () => post(url("peerCached"), valid), 200, '"VALID"'],
    ["js-peer-cached verify unknown", () => post(url("peerCached"), unknown), 200, '"NOT_FOUND"'],
    ["js-peer-cached proxy valid", () => get(url("peerCached"), valid), 200, "ok"],
    ["passthrough", () => get(url("passthrough"), valid), 200, "ok"],
    ["js-peer verify valid", () => post(url("peer"), valid), 200, '"VALID"'],
    ["js-peer verify unknown", () => post(url("peer"), unknown), 200, '"NOT_FOUND"'],
    ["js-peer proxy valid", () => get(url("peer"), valid), 200, "ok"],
    ["noop", () => post(url("noop"), valid), 200, "ok"],
    ["body floor", () => post(url("bodyFloor"), valid), 200, '"VALID"'],
  ];
  for (const [what, call, status, needle] of expectations) {
    const r = await call();
    const text = await r.text();
    if (r.status !== status || !text.includes(needle)) {
      throw new Error(`${what}: expected ${status} with ${needle || "any body"}, got ${r.status}: ${text}`);
    }
  }

  // ---- KV reads per request, through the counting twins ----
  const reads = async (call) => {
    const r = await call();
    await r.arrayBuffer();
    const n = r.headers.get("x-bench-kv-reads");
    if (n === null) throw new Error("the counting worker sent no x-bench-kv-reads header");
    return Number(n);
  };
  const N = 200;
  async function perRequest(call, n = N) {
    let total = 0;
    for (let i = 0; i < n; i++) total += await reads(() => call(i));
    return total / n;
  }
  const kc = url("keywardCounted");
  const pc = url("peerCounted");
  const kv = { keyward: {}, js_peer: {} };
  kv.keyward.cold_valid = await reads(() => post(kc, valid)); // first sight in this isolate
  kv.keyward.warm = await perRequest(() => post(kc, valid));
  kv.keyward.warm_proxy = await perRequest(() => get(kc, valid));
  kv.keyward.garbage = await perRequest(() => post(kc, garbage));
  kv.keyward.garbage_proxy = await perRequest(() => get(kc, garbage));
  // A fresh well-formed unknown key per request: nothing cached, each is a cold miss.
  const unknowns = Array.from({ length: N }, () => newKey());
  kv.keyward.unknown = await perRequest((i) => post(kc, unknowns[i]));
  // One unknown key over and over: the negative cache absorbs the repeats.
  kv.keyward.unknown_repeated = await perRequest(() => post(kc, unknown));
  kv.js_peer.warm = await perRequest(() => post(pc, valid));
  kv.js_peer.garbage = await perRequest(() => post(pc, garbage));
  kv.js_peer.unknown = await perRequest((i) => post(pc, unknowns[i]));

  // ---- the limited key: Durable Object calls per request at steady load ----
  // wrk drives the counting twin with the limited key for a few seconds; the calls its stubs
  // made (lease returns by timer included: read after they are due) over the requests served.
  const counts = async () => (await fetch(`${kc}/_bench/counts`)).json();
  const settle = () => new Promise((ok) => setTimeout(ok, 3000));
  const luaDir = mkdtempSync(join(tmpdir(), "keyward-wrk-"));
  const lua = (name, text) => {
    const p = join(luaDir, `${name}.lua`);
    writeFileSync(p, text);
    return p;
  };
  const postLua = (name, key) =>
    lua(name, `wrk.method = "POST"\nwrk.body = '${verifyBody(key)}'\nwrk.headers["content-type"] = "application/json"\n`);
  const getLua = (name, key) => lua(name, `wrk.method = "GET"\nwrk.headers["authorization"] = "Bearer ${key}"\n`);
  const doCalls = {};
  for (const [id, path, script] of [
    ["verify", "/v1/keys/verify", postLua("dov", limited)],
    ["proxy", "/v1/items/1", getLua("dop", limited)],
  ]) {
    await wrk({ url: `${kc}${path}`, script }, 1); // warm: the first lease is taken here
    await settle();
    const before = await counts();
    const r = await wrk({ url: `${kc}${path}`, script }, Math.max(3, DURATION_S));
    await settle();
    const after = await counts();
    if (r.non2xx) throw new Error(`the limited key was refused ${r.non2xx} times under load (${id})`);
    const requests = after.requests - before.requests;
    doCalls[id] = { requests, do_calls: after.do_calls - before.do_calls, per_request: (after.do_calls - before.do_calls) / requests, rps: r.rps };
    process.stderr.write(`edge bench: limited key ${id}: ${doCalls[id].do_calls} Durable Object calls for ${requests} requests\n`);
  }

  // ---- exactness: EXACT_CLIENTS clients spend the few-credits key, verify API and proxy ----
  const exactness = await spendConcurrently(url("keyward"), exact, EXACT_REQUESTS, EXACT_CLIENTS);
  exactness.credits_granted = EXACT_CREDITS;
  exactness.over = Math.max(0, exactness.admitted - EXACT_CREDITS);
  exactness.under = Math.max(0, EXACT_CREDITS - exactness.admitted);
  process.stderr.write(`edge bench: exactness: ${exactness.admitted} admitted of ${EXACT_CREDITS} credits (${EXACT_REQUESTS} requests, ${EXACT_CLIENTS} clients)\n`);

  // ---- throughput ----
  // In the order measured: every compared pair runs back to back (the floors beside Keyward's
  // warm verify, the limited key beside the unlimited one, the pass-through beside the proxy),
  // and each round runs the list in the other direction. The ratios are medians of the per-round
  // ratios (`xtask/src/bench_report.rs`): both sides of a pair see the machine in the same state.
  const variants = [
    { id: "noop", label: "no-op worker (floor), same POST as verify", url: `${url("noop")}/v1/keys/verify`, script: postLua("nv", valid) },
    { id: "body_floor", label: "JS body floor: reads the JSON body, fixed verdict", url: `${url("bodyFloor")}/v1/keys/verify`, script: postLua("bf", valid) },
    { id: "keyward_verify_warm", label: "Keyward verify, warm valid key", url: `${url("keyward")}/v1/keys/verify`, script: postLua("kv", valid) },
    { id: "js_verify_cached", label: "JS peer verify, isolate cache (found 5 s, unknown 2 s)", url: `${url("peerCached")}/v1/keys/verify`, script: postLua("jvc", valid) },
    { id: "keyward_verify_limited", label: "Keyward verify, warm key with two limits and credits", url: `${url("keyward")}/v1/keys/verify`, script: postLua("kvl", limited) },
    { id: "keyward_proxy_limited", label: "Keyward proxy, warm key with two limits and credits", url: `${url("keyward")}/v1/items/1`, script: getLua("kpl", limited) },
    { id: "keyward_proxy_warm", label: "Keyward proxy → origin worker, warm valid key", url: `${url("keyward")}/v1/items/1`, script: getLua("kp", valid) },
    { id: "passthrough", label: "JS pass-through floor → origin worker (one header stripped)", url: `${url("passthrough")}/v1/items/1`, script: getLua("pt", valid) },
    { id: "js_proxy_cached", label: "JS peer proxy → origin worker, isolate cache", url: `${url("peerCached")}/v1/items/1`, script: getLua("jpc", valid) },
    { id: "js_verify", label: "JS peer verify, valid key", url: `${url("peer")}/v1/keys/verify`, script: postLua("jv", valid) },
    { id: "js_proxy", label: "JS peer proxy → origin worker, valid key", url: `${url("peer")}/v1/items/1`, script: getLua("jp", valid) },
    { id: "keyward_verify_garbage", label: "Keyward verify, garbage key (bad checksum)", url: `${url("keyward")}/v1/keys/verify`, script: postLua("kg", garbage) },
    { id: "keyward_proxy_garbage", label: "Keyward proxy, garbage key (401)", url: `${url("keyward")}/v1/items/1`, script: getLua("kpg", garbage) },
    { id: "keyward_verify_unknown", label: "Keyward verify, unknown well-formed key", url: `${url("keyward")}/v1/keys/verify`, script: postLua("ku", unknown) },
  ];
  if (args.profile) {
    const v = variants.find((x) => x.id === args.profile);
    if (!v) throw new Error(`--profile: no variant ${args.profile}; one of ${variants.map((x) => x.id).join(", ")}`);
    await profile(v, INSPECTOR_PORT, DURATION_S);
    process.exit(0);
  }
  if (args.only) {
    const only = new Set(args.only.split(","));
    variants.splice(0, variants.length, ...variants.filter((v) => only.has(v.id)));
  }
  // Warm every variant (JIT, isolate caches, connection setup) before measuring.
  for (const v of variants) await wrk(v, 1);
  const runs = Object.fromEntries(variants.map((v) => [v.id, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 === 1 ? variants : [...variants].reverse();
    for (const v of order) {
      const r = await wrk(v, DURATION_S);
      runs[v.id].push(r);
      process.stderr.write(
        `edge bench round ${round}/${ROUNDS} ${v.id}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50_ms.toFixed(3)} ms, p99 ${r.p99_ms.toFixed(3)} ms${r.non2xx ? `, ${r.non2xx} non-2xx` : ""}\n`,
      );
    }
  }
  if (args.only) {
    for (const v of variants) process.stderr.write(`${v.id}: median ${median(runs[v.id].map((r) => r.rps)).toFixed(0)} req/s\n`);
    process.exit(0);
  }
  // ---- latency without queueing: one connection, one request at a time ----
  // Under full load (above) p99 is mostly the scheduler: wrk and workerd share the cores. Here a
  // node client sends one request at a time on one keep-alive connection and times every one of
  // them (wrk's latency percentiles at one connection disagree with its own request count, so
  // they are not used). The client's own cost is the same for every variant: the p99 difference
  // to the no-op is what the Worker adds.
  const latencyIds = ["noop", "body_floor", "keyward_verify_warm", "js_verify", "js_verify_cached", "keyward_proxy_warm", "passthrough"];
  const latencyRuns = Object.fromEntries(latencyIds.map((id) => [id, []]));
  const bodies = { noop: verifyBody(valid), body_floor: verifyBody(valid), keyward_verify_warm: verifyBody(valid), js_verify: verifyBody(valid), js_verify_cached: verifyBody(valid) };
  for (const id of latencyIds) await sequential(variants.find((x) => x.id === id), bodies[id], valid, 1);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const id of latencyIds) {
      const v = variants.find((x) => x.id === id);
      const r = await sequential(v, bodies[id], valid, Math.max(2, Math.round(DURATION_S / 2)));
      latencyRuns[id].push(r);
      process.stderr.write(
        `edge latency round ${round}/${ROUNDS} ${id} (one at a time): ${r.n} requests, p50 ${r.p50_ms.toFixed(3)} ms, p99 ${r.p99_ms.toFixed(3)} ms, mean ${r.mean_ms.toFixed(3)} ms\n`,
      );
    }
  }
  const latency = {};
  for (const id of latencyIds) {
    const rs = latencyRuns[id];
    latency[id] = {
      p50_ms: median(rs.map((r) => r.p50_ms)),
      p99_ms: median(rs.map((r) => r.p99_ms)),
      mean_ms: median(rs.map((r) => r.mean_ms)),
      rounds: rs,
    };
  }
  rmSync(luaDir, { recursive: true, force: true });

  const results = {};
  for (const v of variants) {
    const rs = runs[v.id];
    results[v.id] = {
      label: v.label,
      rps: median(rs.map((r) => r.rps)),
      p50_ms: median(rs.map((r) => r.p50_ms)),
      p99_ms: median(rs.map((r) => r.p99_ms)),
      rounds: rs,
    };
  }
  const out = {
    harness: {
      runtime: "workerd via Miniflare (node_modules/miniflare), unsafeDirectSockets: wrk talks to workerd directly",
      miniflare: JSON.parse(readFileSync(join(repo, "node_modules/miniflare/package.json"), "utf8")).version,
      compatibility_date: COMPAT_DATE,
      load: `wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION_S}s --latency, ${ROUNDS} rounds, pairs back to back, direction alternated per round`,
      origin: "a second no-op worker in the same workerd (bench/workers/noop.js)",
      bundle: BUILD,
      usage_reporting: `on: USAGE_URL is a sink in the same workerd (bench/workers/usage-sink.js) that checks each batch's signature; USAGE_FLUSH_S = 5`,
      seconds: Math.round((performance.now() - startedAt) / 1000),
    },
    variants: results,
    latency_one_connection: latency,
    kv_reads_per_request: kv,
    do_calls_per_request: doCalls,
    exactness,
    usage_sink: await (await fetch(`${url("sink")}/stats`)).json(),
  };
  if (out.usage_sink.batches === 0 || out.usage_sink.refused > 0) {
    throw new Error(`usage reporting did not reach the sink: ${JSON.stringify(out.usage_sink)}`);
  }
  writeFileSync(OUT, JSON.stringify(out, null, 2) + "\n");
  process.stderr.write(`edge bench: wrote ${OUT}\n`);
} catch (err) {
  process.stderr.write(`edge bench failed: ${err.stack ?? err}\n`);
  exitCode = 1;
} finally {
  await mf.dispose();
  rmSync(stateDir, { recursive: true, force: true });
}
process.exit(exitCode);

// ---- exactness ----

/**
 * Sends `n` requests with `key` from `clients` concurrent clients, alternating the verify API
 * and the proxy, and counts what was admitted (VALID / 200) and refused for credits
 * (USAGE_EXCEEDED / 429); anything else is an error.
 */
async function spendConcurrently(base, key, n, clients) {
  let next = 0;
  const tally = { requests: n, clients, admitted: 0, usage_exceeded: 0, via_verify: 0, via_proxy: 0 };
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const target = new URL(base);
  const once = (i) =>
    new Promise((ok, fail) => {
      const verify = i % 2 === 0;
      const body = JSON.stringify({ key });
      const req = http.request(
        {
          agent,
          host: target.hostname,
          port: target.port,
          path: verify ? "/v1/keys/verify" : "/v1/items/1",
          method: verify ? "POST" : "GET",
          headers: verify
            ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) }
            : { authorization: `Bearer ${key}` },
        },
        (res) => {
          let text = "";
          res.on("data", (d) => (text += d));
          res.on("end", () => ok({ verify, status: res.statusCode, text }));
        },
      );
      req.on("error", fail);
      req.end(verify ? body : undefined);
    });
  async function client() {
    while (next < n) {
      const r = await once(next++);
      const admitted = r.verify ? r.status === 200 && r.text.includes('"code":"VALID"') : r.status === 200;
      const exhausted = r.verify ? r.text.includes('"USAGE_EXCEEDED"') : r.status === 429 && r.text.includes("USAGE_EXCEEDED");
      if (admitted) {
        tally.admitted++;
        r.verify ? tally.via_verify++ : tally.via_proxy++;
      } else if (exhausted) tally.usage_exceeded++;
      else throw new Error(`exactness: unexpected answer ${r.status}: ${r.text}`);
    }
  }
  await Promise.all(Array.from({ length: clients }, client));
  agent.destroy();
  return tally;
}

// ---- one request at a time ----

/** Sends `variant`'s request one at a time for `seconds` on one keep-alive connection; times each. */
async function sequential(variant, body, key, seconds) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const target = new URL(variant.url);
  const post = variant.script && body !== undefined && variant.url.endsWith("/v1/keys/verify");
  const options = {
    agent,
    host: target.hostname,
    port: target.port,
    path: target.pathname,
    method: post ? "POST" : "GET",
    headers: post
      ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) }
      : { authorization: `Bearer ${key}` },
  };
  const once = () =>
    new Promise((ok, fail) => {
      const req = http.request(options, (res) => {
        res.on("data", () => {});
        res.on("end", () => ok(res.statusCode));
      });
      req.on("error", fail);
      req.end(post ? body : undefined);
    });
  const samples = [];
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    const t0 = performance.now();
    const status = await once();
    samples.push(performance.now() - t0);
    if (status >= 300) throw new Error(`${variant.id} answered ${status} in the latency run`);
  }
  agent.destroy();
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.ceil(samples.length * q) - 1)];
  return {
    n: samples.length,
    p50_ms: at(0.5),
    p99_ms: at(0.99),
    mean_ms: samples.reduce((a, b) => a + b, 0) / samples.length,
  };
}

// ---- CPU profile (--profile) ----

/**
 * Samples the CPU profile of the Worker serving `variant` (workerd's V8 inspector, one target
 * per Worker) while wrk drives it for `seconds`, and prints where the time went: per function,
 * self time and total time (itself and what it called), as shares of all samples.
 */
async function profile(variant, inspectorPort, seconds) {
  const { default: WebSocket } = await import("ws");
  await wrk(variant, 2); // warm
  const port = new URL(variant.url).port;
  const name = Object.entries(ports).find(([, p]) => String(p) === port)?.[0];
  const worker = { keyward: "keyward", passthrough: "passthrough", peerCached: "js-peer-cached", peer: "js-peer", bodyFloor: "body-floor", noop: "noop" }[name] ?? name;
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json();
  const target = targets.find((t) => t.title === `core:user:${worker}` || t.title?.endsWith(`:${worker}`) || t.title === worker);
  if (!target) throw new Error(`no inspector target for ${worker}: ${targets.map((t) => t.title).join(", ")}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl ?? `ws://127.0.0.1:${inspectorPort}/${target.id}`);
  await new Promise((ok, fail) => (ws.once("open", ok), ws.once("error", fail)));
  let id = 0;
  const pending = new Map();
  ws.on("message", (data) => {
    const msg = JSON.parse(data);
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  const send = (method, params = {}) =>
    new Promise((ok, fail) => {
      const n = ++id;
      pending.set(n, (msg) => (msg.error ? fail(new Error(`${method}: ${msg.error.message}`)) : ok(msg.result)));
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 50 });
  await send("Profiler.start");
  const r = await wrk(variant, seconds);
  const { profile: p } = await send("Profiler.stop");
  ws.close();
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n) => `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url ? n.callFrame.url.split("/").pop() + ":" + n.callFrame.lineNumber : ""}`.trim();
  const self = new Map();
  const total = new Map();
  const samples = p.samples.length;
  for (const s of p.samples) {
    const leaf = byId.get(s);
    self.set(label(leaf), (self.get(label(leaf)) ?? 0) + 1);
    const seen = new Set();
    for (let at = s; at !== undefined; at = parent.get(at)) {
      const l = label(byId.get(at));
      if (!seen.has(l)) seen.add(l), total.set(l, (total.get(l) ?? 0) + 1);
    }
  }
  const top = (m, n) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
  const pct = (x) => `${((100 * x) / samples).toFixed(1).padStart(5)}%`;
  console.log(`${variant.id}: ${r.rps.toFixed(0)} req/s while profiled; ${samples} samples`);
  console.log("self time:");
  for (const [l, x] of top(self, 40)) console.log(`  ${pct(x)}  ${l}`);
  console.log("total time:");
  for (const [l, x] of top(total, 40)) console.log(`  ${pct(x)}  ${l}`);
}

// ---- wrk ----

function wrk(variant, seconds) {
  const argv = [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, "--latency"];
  if (variant.script) argv.push("-s", variant.script);
  argv.push(variant.url);
  return new Promise((ok, fail) => {
    const child = spawn("wrk", argv, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", fail);
    child.on("close", (code) => {
      if (code !== 0) return fail(new Error(`wrk ${argv.join(" ")} exited ${code}: ${stderr}`));
      try {
        ok(parseWrk(stdout));
      } catch (err) {
        fail(new Error(`${err.message}\n${stdout}`));
      }
    });
  });
}

function toMs(value) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim());
  if (!m) throw new Error(`unparsable wrk latency ${value}`);
  const n = Number(m[1]);
  return { us: n / 1000, ms: n, s: n * 1000, m: n * 60000 }[m[2]];
}

function parseWrk(text) {
  const total = /(\d+) requests in/.exec(text);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const p50 = /^\s+50%\s+(\S+)/m.exec(text);
  const p99 = /^\s+99%\s+(\S+)/m.exec(text);
  if (!rps || !p50 || !p99) throw new Error("could not parse wrk output");
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text);
  const errors = /Socket errors:.*/.exec(text);
  return {
    requests: total ? Number(total[1]) : null,
    rps: Number(rps[1]),
    p50_ms: toMs(p50[1]),
    p99_ms: toMs(p99[1]),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socket_errors: errors ? errors[0] : null,
  };
}

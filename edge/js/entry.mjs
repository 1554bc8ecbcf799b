// The Worker's entry: `cargo xtask build-edge` writes this over worker-build's
// `build/worker/shim.mjs` (a plain re-export of `../index.js`), which wrangler.toml's `main`
// points at. Rust decides everything, routing included (`dispatch` in `edge/src/lib.rs`, one
// `Route::of` for both entries); this file only chooses how to call it.
//
// 1. A plain module worker. worker-build's default export is a `WorkerEntrypoint` class behind a
//    Proxy: every request constructs an instance and two more Proxies before Rust runs (about
//    10% of a warm verify). This entry calls Rust's exported `dispatch` directly.
// 2. The verify API's synchronous lane. `dispatch` answers every other route with a promise of
//    the response; for `POST /v1/keys/verify` it returns the largest body to read (a number).
//    The entry reads at most that many bytes (`undefined` when the body is larger: Rust answers
//    413) and calls Rust's `verifyNow`, which answers at once when no I/O is needed (a malformed
//    key, or a key in the isolate cache without a rate limit), and otherwise returns
//    `undefined`; then `verifyBody` (async: KV, the rate limiter) answers. A warm verify is then
//    two synchronous calls into Rust instead of an async handler awaiting a Rust future.
// 3. The proxy's synchronous lane. For a proxied request whose key needs no I/O (a warm key,
//    spent from this isolate's leases when limited), `dispatch` answers our refusal (a
//    Response) or the forward plan Rust decided (`Forward` in `edge/src/proxy.rs`): a string
//    of lines, the URL, the method, the header names to strip (space-separated), then a name
//    line and a value line per header to set; alone, or as `[plan, headers]` with the headers
//    (rate limits) to add to the origin's answer. The entry applies the plan and fetches, as a
//    hand-written proxy would: one call into Rust per request, and no Rust future waits on the
//    subrequest. An origin that cannot be reached is Rust's 502 (`originUnreachable`).
//
// Panic recovery is kept: a `WebAssembly.RuntimeError` marks worker-build's shared init state
// critical, and the next request goes through worker-build's class once, which re-initialises
// the WASM instance before handling it (its `fetch` routes with the same `Route::of`).
// `build-edge` refuses a bundle without `__worker_init_state`, and this module refuses to load
// without the handlers it calls.
import Entrypoint, { Allowance, KvWriter } from "../index.js";

const { dispatch, verifyNow, verifyBody, originUnreachable } = Entrypoint.prototype;
for (const [name, fn] of Object.entries({ dispatch, verifyNow, verifyBody, originUnreachable })) {
  if (typeof fn !== "function") {
    throw new Error(`keyward entry: the WASM bundle has no ${name} handler; rebuild the edge`);
  }
}
const initState = globalThis.__worker_init_state;
const decoder = new TextDecoder();

/** The body as text, or `undefined` when it is longer than `limit` bytes (never read whole). */
async function readAtMost(request, limit) {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    // The runtime holds the body to its declared length: read natively, in one call.
    return Number(declared) > limit ? undefined : request.text();
  }
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return decoder.decode(chunks[0]);
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return decoder.decode(all);
}

/** The proxy's subrequest, as Rust's `plan` says: the origin's answer as it came, or with
 *  `extra` headers added. */
async function forward(request, plan, extra) {
  const [url, method, strip, ...set] = plan.split("\n");
  const headers = new Headers(request.headers);
  if (strip !== "") for (const name of strip.split(" ")) headers.delete(name);
  for (let i = 0; i + 1 < set.length; i += 2) headers.set(set[i], set[i + 1]);
  const body = method === "GET" || method === "HEAD" ? null : request.body;
  let resp;
  try {
    resp = await fetch(url, { method, headers, body, redirect: "manual" });
  } catch (err) {
    return originUnreachable(String(err?.message ?? err));
  }
  if (extra === undefined) return resp;
  const own = new Response(resp.body, resp);
  for (const [name, value] of extra) own.headers.set(name, value);
  return own;
}

export default {
  async fetch(request, env, ctx) {
    if (initState.criticalError) {
      return new Entrypoint(ctx, env).fetch(request);
    }
    try {
      const routed = dispatch(request, env, ctx);
      if (typeof routed === "string") return await forward(request, routed);
      if (Array.isArray(routed)) return await forward(request, routed[0], routed[1]);
      if (typeof routed !== "number") return await routed;
      const body = await readAtMost(request, routed);
      return verifyNow(body, env, ctx) ?? (await verifyBody(body, env, ctx));
    } catch (err) {
      if (err instanceof WebAssembly.RuntimeError) {
        console.error("Critical", err);
        initState.criticalError = true;
      }
      throw err;
    }
  },
};

export { Allowance, KvWriter };

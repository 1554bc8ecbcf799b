// The Worker's entry: `cargo xtask build-edge` writes this over worker-build's
// `build/worker/shim.mjs` (a plain re-export of `../index.js`), which wrangler.toml's `main`
// points at. The Rust code decides everything; this file only chooses how to call it.
//
// 1. A plain module worker. worker-build's default export is a `WorkerEntrypoint` class behind a
//    Proxy: every request constructs an instance and two more Proxies before Rust runs (about
//    10% of a warm verify). This entry calls the same `fetch` handler that worker-build installs
//    on the class, with the same `this.env` / `this.ctx`.
// 2. The verify API's synchronous lane. For `POST /v1/keys/verify` the entry reads the body and
//    calls Rust's `verifyNow`, which answers at once when no I/O is needed (a malformed key, or a
//    key in the isolate cache without a rate limit), and otherwise returns `undefined`; then
//    `verifyBody` (async: KV, the rate limiter) answers. Both are in `edge/src/lib.rs`. A warm
//    verify is then one synchronous call into Rust instead of an async handler that awaits the
//    body through a Rust future.
//
// Panic recovery is kept: a `WebAssembly.RuntimeError` marks worker-build's shared init state
// critical, and the next request goes through worker-build's class once, which re-initialises
// the WASM instance before handling it. `build-edge` refuses a bundle without
// `__worker_init_state`, and this module refuses to load without the handlers it calls.
import Entrypoint, { RateLimiter } from "../index.js";

const { fetch: handle, verifyNow, verifyBody } = Entrypoint.prototype;
for (const [name, fn] of Object.entries({ fetch: handle, verifyNow, verifyBody })) {
  if (typeof fn !== "function") {
    throw new Error(`keyward entry: the WASM bundle has no ${name} handler; rebuild the edge`);
  }
}
const initState = globalThis.__worker_init_state;
const VERIFY_PATH = "/v1/keys/verify";

/** Whether `url` (serialized, absolute) has exactly the verify API's path. */
function isVerifyPath(url) {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0 || !url.startsWith(VERIFY_PATH, start)) return false;
  const next = url.charCodeAt(start + VERIFY_PATH.length);
  return Number.isNaN(next) || next === 63 /* ? */ || next === 35 /* # */;
}

export default {
  async fetch(request, env, ctx) {
    if (initState.criticalError) {
      return new Entrypoint(ctx, env).fetch(request);
    }
    try {
      if (request.method === "POST" && isVerifyPath(request.url)) {
        const body = await request.text();
        return verifyNow(body, env, ctx) ?? (await verifyBody(body, env, ctx));
      }
      return await handle.call({ env, ctx }, request);
    } catch (err) {
      if (err instanceof WebAssembly.RuntimeError) {
        console.error("Critical", err);
        initState.criticalError = true;
      }
      throw err;
    }
  },
};

export { RateLimiter };

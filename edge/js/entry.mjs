// The Worker's entry: `cargo xtask build-edge` writes this over worker-build's
// `build/worker/shim.mjs` (a plain re-export of `../index.js`), which wrangler.toml's `main`
// points at.
//
// worker-build's default export is a `WorkerEntrypoint` class behind a Proxy: every request
// constructs an instance and two more Proxies before Rust runs (about 10% of a warm verify). This
// entry is a plain module worker instead: it calls the same `fetch` handler that worker-build
// installs on the class, with the same `this.env` / `this.ctx`.
//
// Panic recovery is kept: a `WebAssembly.RuntimeError` marks worker-build's shared init state
// critical, and the next request goes through worker-build's class once, which re-initialises
// the WASM instance before handling it. Checked at build time: `build-edge` refuses a bundle
// without `__worker_init_state`.
import Entrypoint, { RateLimiter } from "../index.js";

const handle = Entrypoint.prototype.fetch;
const initState = globalThis.__worker_init_state;

export default {
  async fetch(request, env, ctx) {
    if (initState.criticalError) {
      return new Entrypoint(ctx, env).fetch(request);
    }
    try {
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

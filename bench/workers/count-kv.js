// Wraps a Worker (the module `./target.js`) to count its KV reads per request, for the KV-read
// figures of bench/edge.mjs: every `env.KV.get`/`getWithMetadata` call is counted and the count
// is returned in an `x-bench-kv-reads` response header. The wrapped Worker is unchanged (the
// same release build); only its KV binding is seen through a counting view.
import target from "./target.js";

function counting(kv, counter) {
  return {
    get: (...args) => {
      counter.reads++;
      return kv.get(...args);
    },
    getWithMetadata: (...args) => {
      counter.reads++;
      return kv.getWithMetadata(...args);
    },
    put: (...args) => kv.put(...args),
    delete: (...args) => kv.delete(...args),
    list: (...args) => kv.list(...args),
  };
}

export default {
  async fetch(request, env, ctx) {
    const counter = { reads: 0 };
    const kv = counting(env.KV, counter);
    const view = new Proxy(env, { get: (t, p) => (p === "KV" ? kv : Reflect.get(t, p)) });
    // worker-build exports a WorkerEntrypoint class; a plain JS Worker exports an object.
    const resp =
      typeof target === "function"
        ? await target.prototype.fetch.call({ env: view, ctx }, request)
        : await target.fetch(request, view, ctx);
    const out = new Response(resp.body, resp);
    out.headers.set("x-bench-kv-reads", String(counter.reads));
    return out;
  },
};

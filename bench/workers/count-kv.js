// Wraps a Worker (the module `./target.js`) to count its KV reads per request, for the KV-read
// figures of bench/edge.mjs: every `env.KV.get`/`getWithMetadata` call is counted and the count
// is returned in an `x-bench-kv-reads` response header. The wrapped Worker is unchanged (the
// same release build); only its bindings are seen through counting views.
//
// Durable Object calls are counted too, over the isolate's life rather than per request (a
// lease is returned by a timer after the response): every `fetch` on a stub of `env.ALLOWANCE`
// adds one. `GET /_bench/counts` answers `{requests, do_calls}`, the totals so far, so the
// bench reads the calls per request over a wrk run as the difference of two readings.
import target from "./target.js";

const totals = { requests: 0, do_calls: 0 };

/** `v` bound to `t` when it is a method, so the runtime's brand checks see the real object
 * (`constructor` stays as it is: worker-rs checks the binding's constructor name). */
const bound = (t, p, v) => (typeof v === "function" && p !== "constructor" ? v.bind(t) : v);

/** `ns` (a Durable Object namespace) with every stub's `fetch` counted. */
function countingNamespace(ns) {
  const stub = (s) =>
    new Proxy(s, {
      get(t, p) {
        if (p === "fetch") {
          return (...args) => {
            totals.do_calls++;
            return t.fetch(...args);
          };
        }
        return bound(t, p, Reflect.get(t, p));
      },
    });
  return new Proxy(ns, {
    get(t, p) {
      if (p === "get") return (...args) => stub(t.get(...args));
      return bound(t, p, Reflect.get(t, p));
    },
  });
}

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
    if (new URL(request.url).pathname === "/_bench/counts") return Response.json(totals);
    totals.requests++;
    const counter = { reads: 0 };
    const kv = counting(env.KV, counter);
    const allowance = env.ALLOWANCE && countingNamespace(env.ALLOWANCE);
    const view = new Proxy(env, {
      get: (t, p) => (p === "KV" ? kv : p === "ALLOWANCE" && allowance ? allowance : Reflect.get(t, p)),
    });
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

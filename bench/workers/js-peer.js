// The peer: the key check people write by hand in a JavaScript Worker, for bench/edge.mjs.
// SHA-256 of the presented key (crypto.subtle.digest) → KV get `h:{hash}` → JSON.parse →
// status / expiry / scope check → 200 or 401. No checksum pre-check. Same KV entries as Keyward's.
//
// Without `CACHE_TTL_S` there is no isolate cache: one KV read per request, which is what a
// hand-written check does. With `CACHE_TTL_S` (and `NEGATIVE_CACHE_TTL_S`) it keeps Keyward's
// cache policy: a found entry is answered from the isolate for that many seconds, an unknown
// key for the negative TTL — so a comparison with Keyward measures the verifier, not caching.
//
// Routes: POST /v1/keys/verify {key, scope?} → 200 {valid, code, ...}; anything else: the key
// from `Authorization: Bearer` or `X-API-Key`, forwarded to ORIGIN_URL when valid.

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

async function sha256Hex(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  const bytes = new Uint8Array(digest);
  let out = "";
  for (const b of bytes) out += HEX[b];
  return out;
}

/** hash → { entry (null: unknown), until (ms) }, when caching. */
const cache = new Map();

async function lookup(env, hash) {
  const ttl = Number(env.CACHE_TTL_S ?? 0);
  if (ttl <= 0) {
    const raw = await env.KV.get(`h:${hash}`);
    return raw === null ? null : JSON.parse(raw);
  }
  const now = Date.now();
  const hit = cache.get(hash);
  if (hit !== undefined && hit.until > now) return hit.entry;
  const raw = await env.KV.get(`h:${hash}`);
  const entry = raw === null ? null : JSON.parse(raw);
  const negative = Number(env.NEGATIVE_CACHE_TTL_S ?? ttl);
  cache.set(hash, { entry, until: now + 1000 * (entry === null ? negative : ttl) });
  return entry;
}

async function check(env, key, scope) {
  if (typeof key !== "string" || key.length === 0) return { valid: false, code: "MALFORMED" };
  const entry = await lookup(env, await sha256Hex(key));
  if (entry === null) return { valid: false, code: "NOT_FOUND" };
  const who = { key_id: entry.key_id, workspace: entry.workspace, owner_id: entry.owner_id ?? null };
  if (entry.status !== "active") return { valid: false, code: entry.status.toUpperCase(), ...who };
  if (entry.expires_at != null && entry.expires_at <= Date.now() / 1000) {
    return { valid: false, code: "EXPIRED", ...who };
  }
  if (scope && !entry.scopes.includes(scope)) return { valid: false, code: "FORBIDDEN_SCOPE", ...who };
  return { valid: true, code: "VALID", ...who, scopes: entry.scopes, expires_at: entry.expires_at ?? null };
}

function presented(headers) {
  const auth = headers.get("authorization");
  if (auth && auth.startsWith("Bearer ")) return auth.slice(7).trim();
  return headers.get("x-api-key");
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/v1/keys/verify") {
      let body;
      try {
        body = await request.json();
      } catch {
        return Response.json({ error: "invalid json" }, { status: 400 });
      }
      return Response.json(await check(env, body.key, body.scope));
    }
    const verdict = await check(env, presented(request.headers), undefined);
    if (!verdict.valid) {
      return Response.json(verdict, { status: 401, headers: { "www-authenticate": "Bearer" } });
    }
    const headers = new Headers(request.headers);
    headers.delete("authorization");
    headers.delete("x-api-key");
    headers.set("x-keyward-key-id", verdict.key_id);
    headers.set("x-keyward-workspace", verdict.workspace);
    headers.set("x-keyward-scopes", verdict.scopes.join(" "));
    return fetch(new URL(url.pathname + url.search, env.ORIGIN_URL), {
      method: request.method,
      headers,
      body: request.body,
    });
  },
};

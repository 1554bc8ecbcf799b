// The control plane's usage endpoint as bench/edge.mjs needs it: accepts the edge's signed usage
// batches (HMAC-SHA256 over "{timestamp}.{body}" with USAGE_SECRET, `X-Keyward-Signature:
// v1={hex}`, as common/src/sync.rs signs them), refuses a bad signature with 401, and counts
// what it accepted. `GET /stats` answers the totals: batches, reports, and the reports' counts
// summed, so the bench can check that usage reporting was on and what it reported.
const totals = { batches: 0, refused: 0, reports: 0, balances: 0, valid: 0, usage_exceeded: 0, rate_limited: 0, credits_spent: 0 };
let key;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const hex = (buf) => Array.from(new Uint8Array(buf), (b) => HEX[b]).join("");

export default {
  async fetch(request, env) {
    if (request.method === "GET") return Response.json(totals);
    const body = await request.text();
    const ts = request.headers.get("x-keyward-timestamp") ?? "";
    const sig = request.headers.get("x-keyward-signature") ?? "";
    key ??= await crypto.subtle.importKey("raw", new TextEncoder().encode(env.USAGE_SECRET), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${ts}.${body}`));
    if (sig !== `v1=${hex(mac)}`) {
      totals.refused++;
      return new Response("bad signature", { status: 401 });
    }
    const batch = JSON.parse(body);
    totals.batches++;
    totals.reports += batch.reports.length;
    totals.balances += (batch.balances ?? []).length;
    for (const r of batch.reports) {
      totals.valid += r.counts.valid ?? 0;
      totals.usage_exceeded += r.counts.usage_exceeded ?? 0;
      totals.rate_limited += r.counts.rate_limited ?? 0;
      totals.credits_spent += r.counts.credits_spent ?? 0;
    }
    return Response.json({ accepted: batch.reports.length });
  },
};

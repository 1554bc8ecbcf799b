// The floor of any verify API on this runtime, for bench/edge.mjs: reads the JSON body (as every
// verify API must) and answers a fixed JSON verdict, checking nothing. Keyward's warm verify is
// held against it next to the no-op floor, which does not even read the body.
const VERDICT = {
  valid: true,
  code: "VALID",
  key_id: "key_0000000000000000000000",
  workspace: "bench",
  owner_id: "user_bench",
  scopes: ["items.read"],
  expires_at: "2030-01-01T00:00:00Z",
};

export default {
  async fetch(request) {
    let body;
    try {
      body = await request.json();
    } catch {
      return Response.json({ error: "invalid json" }, { status: 400 });
    }
    return Response.json(typeof body?.key === "string" ? VERDICT : { valid: false, code: "MALFORMED" });
  },
};

// The proxy's floor, for bench/edge.mjs: a JS Worker that forwards every request to ORIGIN_URL
// at the same path and query, with one header (`Authorization`) stripped, and returns the
// origin's answer. No key check at all: what any proxy on this runtime pays for the subrequest.
export default {
  fetch(request, env) {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.delete("authorization");
    return fetch(env.ORIGIN_URL + url.pathname + url.search, {
      method: request.method,
      headers,
      body: request.body,
      redirect: "manual",
    });
  },
};

// The runtime's floor: answers every request 200 with a tiny body and does nothing else.
// Also serves as the proxy benchmark's origin. Started by bench/edge.mjs (`cargo xtask bench`).
export default {
  fetch() {
    return new Response("ok\n", { headers: { "content-type": "text/plain" } });
  },
};

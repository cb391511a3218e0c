// jacob in the browser: the worker that holds the WebAssembly module, so that a long
// derivative never freezes the page. Messages: {id, request} in, {id, reply} out.
import init, { answer } from "./pkg/jacob_web.js";

const ready = init();

self.onmessage = async (event) => {
  await ready;
  const { id, request } = event.data;
  let reply;
  try {
    reply = answer(JSON.stringify(request));
  } catch (e) {
    reply = JSON.stringify({ ok: false, kind: "internal", error: `internal error: ${e}` });
  }
  self.postMessage({ id, reply });
};

// jacob in the browser: reads the form, asks the worker (worker.js, the WebAssembly
// build of jacob) and shows the answer as KaTeX and as text, the steps, notes, errors
// with their caret and the check's verdict. The query lives in the address bar.
import katex from "./katex/katex.mjs";

const FIELDS = ["expr", "command", "wrt", "layout", "form", "symmetric", "scalar", "vector", "matrix", "claim"];
// Past this many characters of LaTeX, the text alone is shown (KaTeX would take long).
const MAX_LATEX = 20000;

const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
let nextId = 0;
const pending = new Map();
worker.onmessage = (event) => {
  const { id, reply } = event.data;
  const resolve = pending.get(id);
  pending.delete(id);
  if (resolve) resolve(JSON.parse(reply));
};

function ask(request) {
  const id = ++nextId;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    worker.postMessage({ id, request });
  });
}

function query() {
  const q = {};
  for (const f of FIELDS) q[f] = $(f).value;
  q.explain = $("explain").checked;
  return q;
}

// The query in the address bar, so that a link reproduces it.
function saveState(q) {
  const params = new URLSearchParams();
  for (const f of FIELDS) if (q[f]) params.set(f, q[f]);
  if (q.explain) params.set("explain", "1");
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

function loadState() {
  const params = new URLSearchParams(location.search);
  for (const f of FIELDS) if (params.has(f)) $(f).value = params.get(f);
  $("explain").checked = params.get("explain") === "1";
}

function renderMath(el, latex) {
  if (!latex || latex.length > MAX_LATEX) {
    el.textContent = latex ? "(too long to typeset here: the text is below)" : "";
    return;
  }
  try {
    katex.render(latex, el, { displayMode: true, throwOnError: true, maxExpand: 100000 });
  } catch (e) {
    el.textContent = "";
  }
}

function showError(reply) {
  $("error").hidden = false;
  $("error").textContent = `error: ${reply.error}`;
  $("math").textContent = "";
  $("text").textContent = "";
  $("steps").hidden = true;
}

let current = 0;
async function update() {
  const q = query();
  saveState(q);
  const mine = ++current;
  $("status").textContent = "working…";
  // A verdict is about the query it was asked for.
  $("verdict").className = "";
  $("verdict").textContent = "";
  const started = performance.now();
  const reply = await ask({ ...q, command: q.command });
  if (mine !== current) return; // a newer query is on its way
  $("status").textContent = `${Math.round(performance.now() - started)} ms`;
  $("notes").replaceChildren(
    ...(reply.notes || []).map((n) => Object.assign(document.createElement("li"), { textContent: `note: ${n}` })),
  );
  if (!reply.ok) {
    showError(reply);
    return;
  }
  $("error").hidden = true;
  renderMath($("math"), reply.latex);
  $("text").textContent = reply.text;
  const steps = $("steps");
  steps.hidden = !reply.steps;
  // Each step typeset, its text on hover (and in place of math too long to typeset).
  steps.replaceChildren(
    ...(reply.steps || []).map((s, i) => {
      const li = Object.assign(document.createElement("li"), { title: s });
      const tex = reply.steps_latex?.[i];
      if (tex && tex.length <= MAX_LATEX) {
        try {
          katex.render(tex, li, { displayMode: false, throwOnError: true, maxExpand: 100000 });
          return li;
        } catch {
          // the text below
        }
      }
      li.textContent = s;
      return li;
    }),
  );
}

async function runCheck() {
  const q = query();
  saveState(q);
  const verdict = $("verdict");
  verdict.className = "";
  verdict.textContent = "checking…";
  const reply = await ask({ ...q, command: "check" });
  if (!reply.ok) {
    verdict.className = "disagrees";
    verdict.textContent = `error: ${reply.error}`;
    return;
  }
  const c = reply.check;
  const lines = [];
  if (c.wrong_shape) {
    lines.push(`disagrees: ${c.checked} has the wrong shape: ${c.wrong_shape}`);
  } else {
    c.points.forEach((p, i) => {
      const sizes = p.sizes.map(([n, s]) => `${n}=${s}`).join(", ");
      lines.push(p.error
        ? `point ${i + 1}: the derivative cannot be evaluated: ${p.error} (sizes ${sizes})`
        : `point ${i + 1}: max abs error ${p.abs.toPrecision(2)}, max rel error ${p.rel.toPrecision(2)} (sizes ${sizes})${p.agrees ? "" : " — differs"}`);
    });
    lines.push(c.agrees
      ? `agrees: ${c.checked} matches finite differences at ${c.points.length} points`
      : `disagrees: ${c.checked} differs from finite differences`);
  }
  for (const n of reply.notes || []) lines.push(`note: ${n}`);
  verdict.className = c.agrees ? "agrees" : "disagrees";
  verdict.textContent = lines.join("\n");
}

let timer = 0;
function later() {
  clearTimeout(timer);
  timer = setTimeout(update, 150);
}

loadState();
for (const f of FIELDS) if (f !== "claim") $(f).addEventListener("input", later);
$("explain").addEventListener("change", later);
$("check").addEventListener("click", runCheck);
$("copy").addEventListener("click", () => navigator.clipboard?.writeText($("text").textContent));
$("query").addEventListener("submit", (e) => { e.preventDefault(); update(); });
update();

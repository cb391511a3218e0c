// The web page in headless Chromium (puppeteer-core), served from web/dist on
// 127.0.0.1: a derivative typed in, its KaTeX and text; the check's verdict; a syntax
// error with its caret; the query kept in the address; a 1,000-layer network answered
// while the page stays responsive. Saves a screenshot to web/test/artifacts/.
// Run: bash web/build.sh && node web/test/page.mjs   (CHROMIUM=/path overrides the browser)
import { createServer } from "node:http";
import { readFile, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { extname, join, normalize, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import puppeteer from "puppeteer-core";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "dist");
const artifacts = join(here, "artifacts");
const TYPES = {
  ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript",
  ".css": "text/css", ".wasm": "application/wasm", ".woff2": "font/woff2",
  ".woff": "font/woff", ".ttf": "font/ttf", ".png": "image/png",
};

const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  const file = join(dist, path.endsWith("/") ? `${path}index.html` : path);
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end("not found");
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}/`;

const executablePath = process.env.CHROMIUM
  ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find(existsSync);
assert.ok(executablePath, "no Chromium found: apt-get install chromium, or set CHROMIUM");
const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let failed = false;
try {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  await page.setViewport({ width: 1100, height: 900 });
  await page.goto(base, { waitUntil: "load" });

  const setField = async (id, value) => {
    await page.$eval(`#${id}`, (el) => { el.value = ""; el.dispatchEvent(new Event("input")); });
    if (value) await page.type(`#${id}`, value);
  };
  const textIs = (want, timeout = 20000) =>
    page.waitForFunction((w) => document.getElementById("text").textContent === w, { timeout }, want);

  // A derivative, typed in as a user would.
  await setField("expr", "x'*A*x");
  await setField("wrt", "x");
  await setField("symmetric", "A");
  await textIs("2*A*x");
  const math = await page.$eval("#math", (el) => ({ katex: !!el.querySelector(".katex"), text: el.textContent }));
  assert.ok(math.katex, "the result is typeset by KaTeX");
  assert.match(math.text, /2Ax/, "KaTeX shows 2Ax");
  console.log("ok: x'*A*x by x with A symmetric is 2*A*x, typeset");

  // The query is in the address: a new tab with the link shows the same answer.
  const link = page.url();
  assert.match(link, /symmetric=A/);
  const again = await browser.newPage();
  await again.goto(link, { waitUntil: "load" });
  await again.waitForFunction(() => document.getElementById("text").textContent === "2*A*x", { timeout: 20000 });
  await again.close();
  console.log("ok: the address reproduces the query");

  // The check's verdict: right for a symmetric A, wrong without the declaration.
  await setField("claim", "2*A*x");
  await page.click("#check");
  await page.waitForFunction(() => /^(agrees|disagrees)/m.test(document.getElementById("verdict").textContent), { timeout: 20000 });
  assert.match(await page.$eval("#verdict", (el) => el.textContent), /^agrees: 2\*A\*x matches/m);
  await setField("symmetric", "");
  await textIs("(A + A')*x");
  await page.click("#check");
  await page.waitForFunction(() => /^disagrees/m.test(document.getElementById("verdict").textContent), { timeout: 20000 });
  console.log("ok: check agrees with 2*A*x for a symmetric A and disagrees otherwise");
  await setField("symmetric", "A");
  await textIs("2*A*x");
  await page.screenshot({ path: join(artifacts, "page.png"), fullPage: true }).catch(async () => {
    await mkdir(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, "page.png"), fullPage: true });
  });

  // A syntax error: one sentence, the expression, a caret under the place.
  await setField("expr", "x'*A*x +");
  await page.waitForFunction(() => !document.getElementById("error").hidden, { timeout: 20000 });
  const error = await page.$eval("#error", (el) => el.textContent);
  const lines = error.split("\n");
  assert.equal(lines[0], "error: the expression ends too early: an operand is missing");
  assert.equal(lines[1], "  x'*A*x +");
  assert.equal(lines[2].indexOf("^"), 2 + "x'*A*x +".length, `caret after the +: ${JSON.stringify(error)}`);
  console.log("ok: a syntax error shows its caret");

  // A 1,000-layer network: answered, and the page answers meanwhile.
  let net = "x";
  for (let i = 1; i <= 1000; i++) net = `relu(W${i}*${net})`;
  await setField("symmetric", "");
  await setField("wrt", "W1");
  await page.$eval("#expr", (el, v) => { el.value = v; el.dispatchEvent(new Event("input")); }, `norm2(${net} - y)^2`);
  const started = Date.now();
  let slowest = 0;
  while (!(await page.$eval("#text", (el) => el.textContent.includes("where")))) {
    const t = Date.now();
    await page.evaluate(() => 1);
    slowest = Math.max(slowest, Date.now() - t);
    assert.ok(Date.now() - started < 60000, "the 1,000-layer network is answered within a minute");
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(slowest < 1000, `the page stayed responsive (slowest round trip ${slowest} ms)`);
  console.log(`ok: a 1,000-layer network answered in ${Date.now() - started} ms; the page answered within ${slowest} ms meanwhile`);
  await page.screenshot({ path: join(artifacts, "network.png") });

  assert.deepEqual(problems, [], "no errors in the page");
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack ?? e}`);
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);

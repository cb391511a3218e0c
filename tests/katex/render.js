// Renders LaTeX strings with KaTeX the way a browser would show jacob's
// `--format latex` output: standard input is a JSON array of
// {"tex": "...", "display": bool} items, inline math (`$…$`) unless `display`
// (an `align*` block, as `--explain --format latex` prints).
// Strict mode: LaTeX that plain LaTeX would reject (Unicode in text mode) fails too.
// Prints `ok N` when all N items render; otherwise prints each failing item
// with KaTeX's error to standard error and exits 1. Used by tests/katex.rs.
"use strict";

const katex = require("katex");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => {
  const items = JSON.parse(input);
  let failed = 0;
  items.forEach((item, i) => {
    try {
      katex.renderToString(item.tex, {
        throwOnError: true,
        displayMode: item.display,
        strict: "error",
      });
    } catch (e) {
      failed += 1;
      process.stderr.write(`item ${i + 1}: ${item.tex}\n  ${e.message}\n`);
    }
  });
  if (failed > 0) {
    process.stderr.write(`${failed} of ${items.length} items failed to render\n`);
    process.exit(1);
  }
  process.stdout.write(`ok ${items.length}\n`);
});

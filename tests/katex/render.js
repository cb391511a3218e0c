// Renders LaTeX strings with KaTeX, one per line of standard input, the way a
// browser would show jacob's `--format latex` output inside `$…$`.
// Strict mode: LaTeX that plain LaTeX would reject (Unicode in text mode) fails too.
// Prints `ok N` when all N lines render; otherwise prints each failing line
// with KaTeX's error to standard error and exits 1. Used by tests/katex.rs.
"use strict";

const katex = require("katex");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => {
  const lines = input.split("\n").filter((line) => line.length > 0);
  let failed = 0;
  lines.forEach((line, i) => {
    try {
      katex.renderToString(line, { throwOnError: true, displayMode: false, strict: "error" });
    } catch (e) {
      failed += 1;
      process.stderr.write(`line ${i + 1}: ${line}\n  ${e.message}\n`);
    }
  });
  if (failed > 0) {
    process.stderr.write(`${failed} of ${lines.length} lines failed to render\n`);
    process.exit(1);
  }
  process.stdout.write(`ok ${lines.length}\n`);
});

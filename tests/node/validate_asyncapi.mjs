// Validate AsyncAPI documents with @asyncapi/parser.
// Usage: node validate_asyncapi.mjs <document.json> [<document.json> ...]
// Prints one JSON line per document, {"valid": bool, "version": ..., "errors": [...], ...},
// and exits 0 when no document has an error-level diagnostic, 1 otherwise.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Parser } = require("@asyncapi/parser");

const parser = new Parser();
let allValid = true;
for (const path of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"));
  const errors = diagnostics.filter((d) => d.severity === 0);
  const summary = {
    path,
    valid: document !== undefined && errors.length === 0,
    version: document ? document.version() : null,
    channels: document ? document.channels().all().map((c) => c.id()) : [],
    messages: document ? document.components().messages().all().map((m) => m.id()) : [],
    errors: errors.map((d) => ({ code: d.code, message: d.message, path: d.path.join("/") })),
    warnings: diagnostics.filter((d) => d.severity === 1).length,
  };
  allValid = allValid && summary.valid;
  console.log(JSON.stringify(summary));
}
process.exit(allValid ? 0 : 1);

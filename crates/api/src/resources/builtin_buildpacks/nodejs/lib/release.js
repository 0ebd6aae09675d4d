// bin/release: the web process is package.json's scripts.start (run by the launcher's sh -c,
// no npm needed), else `node server.js`. A Procfile, if any, overrides it.
const fs = require("fs");
const path = require("path");
let start = "";
try {
  const pkg = JSON.parse(fs.readFileSync(path.join(process.argv[2], "package.json"), "utf8"));
  if (pkg && pkg.scripts && typeof pkg.scripts.start === "string") start = pkg.scripts.start.trim();
} catch (e) {}
const web = start || "node server.js";
process.stdout.write(`---\ndefault_process_types:\n  web: ${JSON.stringify(web)}\n`);

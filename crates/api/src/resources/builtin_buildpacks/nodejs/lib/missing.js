// Prints the dependencies package.json names that node_modules lacks (space-separated).
const fs = require("fs");
const path = require("path");
const app = process.argv[2];
let pkg;
try {
  pkg = JSON.parse(fs.readFileSync(path.join(app, "package.json"), "utf8"));
} catch (e) {
  console.error(`package.json is not valid JSON: ${e.message}`);
  process.exit(1);
}
const deps = Object.keys((pkg && pkg.dependencies) || {});
const missing = deps.filter((d) => !fs.existsSync(path.join(app, "node_modules", d, "package.json")));
process.stdout.write(missing.join(" "));

// Builds the web app into gateway/static/app/ (run by `make setup` after `npm ci`; `node build.mjs --watch`
// while developing). Everything the app loads is in that directory: no CDN, works offline.
import { build, context } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "gateway", "static", "app");
const watch = process.argv.includes("--watch");

const options = {
  entryPoints: {
    app: join(here, "src", "main.jsx"),
    "pcm-worklet": join(here, "src", "pcm-worklet.js"),
    style: join(here, "src", "app.css"),
  },
  outdir: out,
  bundle: true,
  format: "esm",
  target: ["chrome109", "firefox115", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  minify: !watch,
  sourcemap: true,
  legalComments: "linked",
  logLevel: "info",
};

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await copyFile(join(here, "index.html"), join(out, "index.html"));
await copyFile(join(here, "icon.svg"), join(out, "icon.svg"));
if (watch) {
  await (await context(options)).watch();
} else {
  await build(options);
}

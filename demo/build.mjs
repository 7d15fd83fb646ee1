// Bundles src/main.js and graphql-ws into dist/demo.js, the file the server compiles in.
// `node build.mjs OUTFILE` writes elsewhere, so a check can compare without touching dist/.
import { build } from "esbuild";

await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  legalComments: "none",
  logLevel: "warning",
  outfile: process.argv[2] ?? "dist/demo.js",
});

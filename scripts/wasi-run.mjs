// Cargo test runner for wasm32-wasip1: runs a WASI test binary under Node.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";

const [, , wasmPath, ...args] = argv;
const wasi = new WASI({ version: "preview1", args: [wasmPath, ...args], env, preopens: { "/": "/" }, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(wasmPath));
// The proxy-wasm SDK links host imports (module "env"); unit tests never call them.
const env_ = {};
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === "env" && imp.kind === "function") {
    env_[imp.name] = () => { throw new Error(`host call ${imp.name} in a unit test`); };
  }
}
const instance = await WebAssembly.instantiate(module, { ...wasi.getImportObject(), env: env_ });
// A binary that links the filter also exports the SDK's `_initialize`, which
// `wasi.start` refuses next to `_start`; hand it only what a command needs.
const { memory, _start } = instance.exports;
exit(wasi.start({ exports: { memory, _start } }));

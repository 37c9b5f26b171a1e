import { defineConfig } from 'tsup'

// One ESM entry point, the `tributary` CLI. Dependencies stay external (node_modules), so
// native addons such as classic-level load their prebuilds as usual. The single-binary
// build for devices lives in deploy/ and bundles differently.
export default defineConfig({
  entry: { cli: 'src/cli.ts' },
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  outDir: 'dist',
  clean: true,
  sourcemap: true,
  // Commands load lazily (src/cli.ts) in chunks of their own, so the CLI runs code before aedes
  // and mqtt-packet load (src/mqtt/quiet-debug.ts) and `tributary sim` does not load the broker.
  splitting: true,
  dts: false
})

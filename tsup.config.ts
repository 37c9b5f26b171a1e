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
  splitting: false,
  dts: false
})

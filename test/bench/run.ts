// `npm run bench [-- name ...]`: runs every test/bench/*.bench.ts (or those whose name matches),
// each exporting `run(): Promise<string>` that returns a Markdown section, and prints them.
// Results go to stdout and to bench-results/<date>.md; BENCHMARKS.md is curated by hand from them.
import { readdirSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'

const here = new URL('.', import.meta.url).pathname
const root = join(here, '..', '..')
const filters = process.argv.slice(2)
const files = readdirSync(here).filter((f) => f.endsWith('.bench.ts')).sort()
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))

// Benchmarks that spawn the CLI need a fresh build.
execFileSync('npx', ['tsup'], { cwd: root, stdio: 'ignore' })

const sections: string[] = []
for (const file of files) {
  console.error(`== ${file}`)
  const mod = await import(join(here, file)) as { run: () => Promise<string> }
  const started = Date.now()
  const markdown = await mod.run()
  console.log(markdown + '\n')
  sections.push(markdown)
  console.error(`== ${file} took ${((Date.now() - started) / 1000).toFixed(0)} s`)
}
mkdirSync(join(root, 'bench-results'), { recursive: true })
const out = join(root, 'bench-results', `${new Date().toISOString().replace(/[:.]/g, '-')}.md`)
writeFileSync(out, sections.join('\n\n') + '\n')
console.error(`results written to ${out}`)

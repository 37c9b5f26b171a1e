// Finds test files (Node 20's test runner takes no globs) and runs them with node:test under tsx.
// `npm test` runs all; `npm test -- test/unit` or `npm test -- commitlog` runs those matching.
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { spawn } from 'node:child_process'

const root = new URL('..', import.meta.url).pathname
function find (dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...find(path))
    else if (name.endsWith('.test.ts')) out.push(relative(root, path))
  }
  return out
}
const filters = process.argv.slice(2)
const files = find(join(root, 'test')).sort().filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`)
  process.exit(1)
}
const args = ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=240000', ...files]
const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' })
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))

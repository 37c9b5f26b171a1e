// Removes optionalDependencies from package-lock.json that have no package entry of their own.
// Why: the registry this project builds from mirrors only some platform packages (e.g. rollup's
// and esbuild's linux builds, not android/darwin/win32); `npm install` then writes a lock that
// names those optional packages without entries, and `npm ci` refuses such a lock ("Missing: ...
// from lock file"). Dropping the dangling names is what npm would do if the registry had them and
// the platform did not match: they are never installed here. Idempotent; run before `npm ci`.
import { readFileSync, writeFileSync } from 'node:fs'

const file = new URL('../package-lock.json', import.meta.url)
const lock = JSON.parse(readFileSync(file, 'utf8'))
const removed = []
for (const [path, pkg] of Object.entries(lock.packages ?? {})) {
  if (pkg.optionalDependencies === undefined) continue
  for (const dep of Object.keys(pkg.optionalDependencies)) {
    const nested = path === '' ? `node_modules/${dep}` : `${path}/node_modules/${dep}`
    if (lock.packages[nested] === undefined && lock.packages[`node_modules/${dep}`] === undefined) {
      delete pkg.optionalDependencies[dep]
      removed.push(dep)
    }
  }
}
if (removed.length > 0) {
  writeFileSync(file, JSON.stringify(lock, null, 2) + '\n')
  console.error(`prune-lockfile: dropped ${removed.length} optional dependencies the registry does not serve`)
}

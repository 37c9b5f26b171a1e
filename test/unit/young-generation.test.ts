// The flag of disableAllocationSitePretenuring (src/mqtt/young-generation.ts) stops V8 from allocating new
// objects of a long-surviving allocation site in the old generation, and the young-generation cap
// really stops V8's new space from growing
// past the cap under an allocation pattern that grows it without the cap (checked after stop()).
// node:test runs each file in its own process, so the V8 flag changes stay in this process.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { capYoungGeneration, currentSemiSpaceBytes, PRETENURING_OFF_FLAG } from '../../src/mqtt/young-generation.js'
import { silentLogger } from '../../src/log/index.js'

const MIB = 1024 * 1024
const turn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

// Like a connection storm: objects that survive a few scavenges (kept in a rolling window), with a
// loop turn between chunks so GC observers run, as they do in a server.
async function allocateSurvivors (rounds: number): Promise<number> {
  let maxSemi = 0
  const keep: unknown[] = []
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < 20_000; i++) keep.push({ id: i, tags: [r, i], name: `conn-${r}-${i}` })
    if (keep.length > 400_000) keep.splice(0, 200_000)
    await turn()
    maxSemi = Math.max(maxSemi, currentSemiSpaceBytes())
  }
  return maxSemi
}

test('capYoungGeneration keeps the semi-space at the cap; after stop() V8 grows it again', async () => {
  const cap = capYoungGeneration(2, silentLogger())
  assert.ok(cap !== undefined)
  try {
    const maxWithCap = await allocateSurvivors(150)
    assert.ok(maxWithCap <= 2 * MIB, `semi-space reached ${maxWithCap / MIB} MiB with a 2 MiB cap`)
    assert.equal(cap.frozen, true, 'the cap was reached, so growth is stopped')
  } finally {
    cap.stop()
  }
  assert.equal(cap.frozen, false)
  // Control: the same allocation without the cap grows the semi-space past it, so the assertion
  // above measured the cap and not a pattern too small to grow the new space.
  const maxWithout = await allocateSurvivors(150)
  assert.ok(maxWithout > 2 * MIB, `without the cap the semi-space stayed at ${maxWithout / MIB} MiB`)
})

test('capYoungGeneration(0) leaves V8 alone', () => {
  assert.equal(capYoungGeneration(0, silentLogger()), undefined)
})

// In a child process (V8 flags are per process; a plain one: with tsx's loader thread in the
// process V8's pretenuring decisions became erratic): objects from one allocation site that all
// survive (like connection state in a storm) until the new space is at its maximum; then V8
// pretenures the site and every fresh object of it is born in the old generation. Counted with
// V8's %InYoungGeneration (--allow-natives-syntax). The child sets the very flag that
// disableAllocationSitePretenuring sets.
function freshObjectsInOldGeneration (pretenuringOff: boolean): number {
  const script = `
    import { setFlagsFromString } from 'node:v8'
    if (${pretenuringOff}) setFlagsFromString(${JSON.stringify(PRETENURING_OFF_FLAG)})
    const inYoung = new Function('o', 'return %InYoungGeneration(o)')
    const make = (i) => ({ id: i, tags: [i, i + 1] })
    const keep = []
    let old = 0
    for (let i = 0; i < 2e6; i++) { const o = make(i); keep.push(o); if (!inYoung(o)) old++ }
    console.log(old)`
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' })
  return Number(out.trim())
}

test('pretenuring off: fresh objects of a surviving allocation site stay young (V8 default: born old)', () => {
  // Control first: with V8's default the pattern does get pretenured, so the test can fail.
  assert.ok(freshObjectsInOldGeneration(false) > 100_000, 'V8 did not pretenure the site: the pattern no longer exercises pretenuring')
  assert.equal(freshObjectsInOldGeneration(true), 0)
})

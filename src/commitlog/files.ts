// File names in a commitlog directory, the lock file and the dirty-shutdown marker.
import { closeSync, existsSync, openSync, readFileSync, readdirSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { tributaryError } from '../errors/index.js'

export const SEGMENT_SUFFIX = '.log'
export const TIME_INDEX_SUFFIX = '.timeindex'
export const LOCK_FILE = 'LOCK'
export const DIRTY_FILE = 'DIRTY'
export const CHECKPOINT_FILE = 'checkpoint'
export const INDEX_DIR = 'index'

export function segmentName (base: number): string {
  return String(base).padStart(20, '0') + SEGMENT_SUFFIX
}

export function timeIndexName (base: number): string {
  return String(base).padStart(20, '0') + TIME_INDEX_SUFFIX
}

// Start offsets of the segments in `dir`, ascending.
export function listSegmentBases (dir: string): number[] {
  const bases: number[] = []
  for (const name of readdirSync(dir)) {
    if (name.length === 20 + SEGMENT_SUFFIX.length && name.endsWith(SEGMENT_SUFFIX)) {
      const base = Number(name.slice(0, 20))
      if (Number.isSafeInteger(base)) bases.push(base)
    }
  }
  return bases.sort((a, b) => a - b)
}

function pidAlive (pid: number): boolean {
  try {
    // Signal 0 checks existence only. EPERM means it exists but belongs to someone else.
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

// Takes the directory's lock: a file holding our pid. A lock left by a dead process (SIGKILL,
// power loss) is taken over; a live holder (including this very process) is refused.
// The pid is the process's own identity, not configuration, so reading it here is acceptable.
export function acquireLock (dir: string): void {
  const path = join(dir, LOCK_FILE)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx')
      writeSync(fd, String(process.pid))
      closeSync(fd)
      return
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw tributaryError('TRIB_ERR_LOG_IO', `cannot create lock ${path}`, { path }, err)
    }
    let holder = NaN
    try { holder = Number(readFileSync(path, 'utf8').trim()) } catch { /* vanished meanwhile: retry */ }
    if (Number.isInteger(holder) && holder > 0 && pidAlive(holder)) {
      throw tributaryError('TRIB_ERR_LOG_LOCKED', `commitlog ${dir} is locked by process ${holder}`, { dir, pid: holder })
    }
    try { unlinkSync(path) } catch { /* someone else removed it */ }
  }
  throw tributaryError('TRIB_ERR_LOG_LOCKED', `commitlog ${dir}: could not take the lock`, { dir })
}

export function releaseLock (dir: string): void {
  try { unlinkSync(join(dir, LOCK_FILE)) } catch { /* already gone */ }
}

export function dirtyMarkerExists (dir: string): boolean {
  return existsSync(join(dir, DIRTY_FILE))
}

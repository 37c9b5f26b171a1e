import pino, { type Logger, type LevelWithSilent } from 'pino'

export type { Logger }

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

// One root logger per process. We write with pino.destination on the main thread rather than a
// transport: a transport is a worker thread and costs ~10 MB, too much on a small device.
// Components take a child logger (`log.child({ component: 'commitlog' })`) as a parameter;
// nothing logs per message at info level.
export function createRootLogger (opts: { level: LevelWithSilent, name?: string, destination?: number | string }): Logger {
  return pino(
    { level: opts.level, name: opts.name ?? 'tributary', base: { pid: process.pid } },
    pino.destination({ dest: opts.destination ?? 1, sync: false })
  )
}

// A silent logger for tests and library use.
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}

// The commitlog: public contract (types.ts) and its implementation. See README.md for the byte
// layout, flush policies and recovery.
export { CommitLog, fsyncGapProblem } from './commit-log.js'
export type { TopicEntry } from './topic-index.js'
export * from './types.js'

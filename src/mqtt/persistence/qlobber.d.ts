// Minimal types for the parts of qlobber 8 we use (the package ships none).
declare module 'qlobber/aedes/qlobber-sub.js' {
  interface QlobberSubOptions { separator?: string, wildcard_one?: string, wildcard_some?: string, match_empty_levels?: boolean }
  interface SubValue { clientId: string, topic: string, qos: number, rh?: number, rap?: boolean, nl?: boolean }
  class QlobberSub {
    constructor (options?: QlobberSubOptions)
    subscriptionsCount: number
    add (topic: string, value: SubValue): this
    remove (topic: string, value: { clientId: string, topic: string }): this
    match (topic: string): Array<{ clientId: string, topic: string, qos: number, rh?: number, rap?: boolean, nl?: boolean }>
  }
  export = QlobberSub
}

declare module 'qlobber' {
  interface QlobberOptions { separator?: string, wildcard_one?: string, wildcard_some?: string, match_empty_levels?: boolean }
  export class QlobberTrue {
    constructor (options?: QlobberOptions)
    add (topic: string): this
    test (topic: string): boolean
  }
}

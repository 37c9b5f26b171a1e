// MQTT topic filter matching for the bridge's `forward` list (pure, no allocation per match).
// [MQTT-4.7.1-2] '#' matches the parent level and any number of child levels; it must be last.
// [MQTT-4.7.1-3] '+' matches exactly one level.
// [MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with '$'.

export function topicMatches (filter: string, topic: string): boolean {
  if (filter.length > 0 && (filter[0] === '#' || filter[0] === '+') && topic.length > 0 && topic[0] === '$') return false
  let f = 0
  let t = 0
  const fl = filter.length
  const tl = topic.length
  while (f < fl) {
    const fc = filter.charCodeAt(f)
    if (fc === 35 /* # */) return true
    if (fc === 43 /* + */) {
      // Skip one topic level.
      while (t < tl && topic.charCodeAt(t) !== 47 /* / */) t++
      f++
    } else {
      // Compare one literal level.
      while (f < fl && filter.charCodeAt(f) !== 47) {
        if (t >= tl || topic.charCodeAt(t) !== filter.charCodeAt(f)) return false
        f++; t++
      }
      if (t < tl && topic.charCodeAt(t) !== 47) return false
    }
    // Both at a separator or at the end.
    if (f >= fl) return t >= tl
    // filter has '/': topic must have one too, except 'a/#' matching 'a'.
    if (t >= tl) return filter.length - f === 2 && filter.charCodeAt(f + 1) === 35
    f++; t++
  }
  return t >= tl
}

// A set of filters compiled once; `matches` is the hot path.
export class TopicFilterSet {
  private readonly filters: readonly string[]
  readonly matchesAll: boolean

  constructor (filters: readonly string[]) {
    this.filters = [...filters]
    this.matchesAll = this.filters.includes('#')
  }

  matches (topic: string): boolean {
    if (this.matchesAll) return topic.length === 0 || topic[0] !== '$'
    for (let i = 0; i < this.filters.length; i++) if (topicMatches(this.filters[i], topic)) return true
    return false
  }
}

// A valid filter: '#' only as the whole last level, '+' only as a whole level, not empty.
export function isValidTopicFilter (filter: string): boolean {
  if (filter.length === 0) return false
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return false
    if (l.includes('+') && l !== '+') return false
  }
  return true
}

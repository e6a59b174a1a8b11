import { describe, expect, it, vi } from 'vitest'
import { KNOWN_KINDS, createDispatcher, createEventStream, kindMatches, parseEnvelope } from '../src/sse/dispatcher.js'

describe('parseEnvelope', () => {
  it.each([
    ['full envelope', JSON.stringify({ v: 1, seq: 7, kind: 'ticket.issued', data: { number: 'A001' } }), '7', 'ticket.issued', { seq: 7, kind: 'ticket.issued', data: { number: 'A001' } }],
    ['kind from the event name', JSON.stringify({ seq: 3, data: {} }), '3', 'vip.arrived', { seq: 3, kind: 'vip.arrived' }],
    ['seq from the SSE id', JSON.stringify({ kind: 'alert.raised', data: {} }), '12', 'alert.raised', { seq: 12 }],
    ['string seq', JSON.stringify({ kind: 'x.y', seq: '44' }), '', 'message', { seq: 44, data: {} }],
  ])('%s', (_name, data, id, name, want) => {
    expect(parseEnvelope(data, id, name)).toMatchObject(want)
  })

  it.each([['not json'], ['"a string"'], [JSON.stringify({ seq: 1 })]])('rejects %s', (data) => {
    expect(parseEnvelope(data, '', 'message')).toBe(null)
  })
})

describe('kindMatches', () => {
  it.each([
    ['*', 'ticket.issued', true],
    ['ticket.*', 'ticket.issued', true],
    ['ticket.*', 'tickets.issued', false],
    ['order.*', 'order.near_timeout', true],
    ['vip.arrived', 'vip.arrived', true],
    ['vip.arrived', 'vip.arrived2', false],
  ])('%s ~ %s → %s', (p, k, want) => expect(kindMatches(p, k)).toBe(want))
})

describe('createDispatcher', () => {
  it('delivers to matching subscribers and unsubscribes', () => {
    const d = createDispatcher()
    const a = vi.fn()
    const b = vi.fn()
    const off = d.on('ticket.*', a)
    d.on(['vip.arrived', 'auth.*'], b)
    expect(d.dispatch({ kind: 'ticket.called' })).toBe(1)
    expect(d.dispatch({ kind: 'auth.requested' })).toBe(1)
    expect(d.dispatch({ kind: 'device.status' })).toBe(0)
    off()
    expect(d.dispatch({ kind: 'ticket.called' })).toBe(0)
    expect(a).toHaveBeenCalledTimes(1)
    expect(b).toHaveBeenCalledTimes(1)
  })

  it('reports a failing handler and still runs the others', () => {
    const onHandlerError = vi.fn()
    const d = createDispatcher({ onHandlerError })
    const good = vi.fn()
    d.on('*', () => { throw new Error('boom') })
    d.on('*', good)
    d.dispatch({ kind: 'x.y' })
    expect(good).toHaveBeenCalled()
    expect(onHandlerError.mock.calls[0][0].message).toBe('boom')
  })
})

class FakeEventSource {
  static instances = []
  constructor(url, opts) {
    this.url = url
    this.opts = opts
    this.readyState = 0
    this.listeners = {}
    this.closed = false
    FakeEventSource.instances.push(this)
  }
  addEventListener(name, fn) {
    ;(this.listeners[name] ||= []).push(fn)
  }
  close() {
    this.closed = true
    this.readyState = 2
  }
  open() {
    this.readyState = 1
    this.onopen && this.onopen()
  }
  emit(name, env) {
    const msg = { data: JSON.stringify(env), lastEventId: env.seq !== undefined ? String(env.seq) : '' }
    if (name === 'message') this.onmessage(msg)
    else (this.listeners[name] || []).forEach((fn) => fn(msg))
  }
  fail(closed) {
    this.readyState = closed ? 2 : 0
    this.onerror()
  }
}

function setup(extra = {}) {
  FakeEventSource.instances = []
  const events = []
  const statuses = []
  const gaps = []
  const timers = []
  const stream = createEventStream({
    EventSourceImpl: FakeEventSource,
    onEvent: (e) => events.push(e),
    onStatus: (s) => statuses.push(s),
    onGap: (a, b) => gaps.push([a, b]),
    setTimeoutImpl: (fn, ms) => timers.push({ fn, ms }),
    ...extra,
  })
  stream.start()
  return { stream, events, statuses, gaps, timers, es: () => FakeEventSource.instances.at(-1) }
}

describe('createEventStream', () => {
  it('opens one EventSource with credentials and listens to every known kind', () => {
    const { es } = setup()
    expect(FakeEventSource.instances).toHaveLength(1)
    expect(es().url).toBe('/api/v1/events')
    expect(es().opts).toEqual({ withCredentials: true })
    for (const k of KNOWN_KINDS) expect(es().listeners[k]).toHaveLength(1)
    expect(KNOWN_KINDS).toEqual(expect.arrayContaining(['ticket.issued', 'queue.alert', 'vip.arrived', 'auth.requested', 'device.exception', 'alert.raised']))
  })

  it('delivers named and unnamed events in order, dropping replayed duplicates', () => {
    const { es, events } = setup()
    es().open()
    es().emit('ticket.issued', { seq: 1, kind: 'ticket.issued', data: {} })
    es().emit('message', { seq: 2, kind: 'ticket.called', data: {} })
    es().emit('ticket.issued', { seq: 2, kind: 'ticket.called', data: {} }) // replay after resume
    es().emit('vip.arrived', { seq: 3, kind: 'vip.arrived', data: { name: '刘女士' } })
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3])
  })

  it('signals a gap in seq so the screens refetch', () => {
    const { es, gaps } = setup()
    es().emit('ticket.issued', { seq: 5, kind: 'ticket.issued' })
    es().emit('ticket.issued', { seq: 9, kind: 'ticket.issued' })
    expect(gaps).toEqual([[5, 9]])
  })

  it('leaves transient errors to the browser\'s own reconnect', () => {
    const { es, statuses, timers } = setup()
    es().open()
    es().fail(false)
    expect(statuses).toEqual(['connecting', 'open', 'reconnecting'])
    expect(timers).toHaveLength(0)
    expect(FakeEventSource.instances).toHaveLength(1)
  })

  it('reopens after a hard close with the last seq and a growing delay', async () => {
    const onClosed = vi.fn(async () => true)
    const { es, timers } = setup({ onClosed })
    es().open()
    es().emit('ticket.issued', { seq: 41, kind: 'ticket.issued' })
    es().fail(true)
    expect(timers[0].ms).toBe(1000)
    await timers[0].fn()
    expect(onClosed).toHaveBeenCalled()
    expect(FakeEventSource.instances).toHaveLength(2)
    expect(es().url).toBe('/api/v1/events?last_event_id=41')
    es().fail(true)
    expect(timers[1].ms).toBe(2000)
  })

  it('stays shut when the session is gone', async () => {
    const { es, timers } = setup({ onClosed: async () => false })
    es().fail(true)
    await timers[0].fn()
    expect(FakeEventSource.instances).toHaveLength(1)
  })

  it('stop closes the connection', () => {
    const { es, stream, statuses } = setup()
    stream.stop()
    expect(es().closed).toBe(true)
    expect(statuses.at(-1)).toBe('stopped')
  })
})

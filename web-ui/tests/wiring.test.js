import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { KNOWN_KINDS, createDispatcher } from '../src/sse/dispatcher.js'
import { STATS_KINDS, wireLiveEvents, wireStats } from '../src/stores/wiring.js'

function fakeStores(active = true) {
  const mk = (extra = {}) => ({ active, load: vi.fn(), ...extra })
  return {
    queue: mk(),
    alerts: mk({ fromEvent: vi.fn(), markAcked: vi.fn() }),
    vip: mk({ fromEvent: vi.fn() }),
    devices: mk(),
    tasks: mk(),
    orders: mk({ open: vi.fn(), current: { id: 'O7' } }),
    customers: mk(),
    leads: mk(),
    rights: mk(),
    products: mk(),
  }
}

let live
let stores
let unwire
beforeEach(() => {
  vi.useFakeTimers()
  const d = createDispatcher()
  live = { on: d.on, dispatch: d.dispatch }
  stores = fakeStores()
  unwire = wireLiveEvents(live, stores, { delayMs: 100 })
})
afterEach(() => {
  unwire()
  vi.useRealTimers()
})

const calls = () => ({
  queue: stores.queue.load.mock.calls.length,
  devices: stores.devices.load.mock.calls.length,
  tasks: stores.tasks.load.mock.calls.length,
  orders: stores.orders.load.mock.calls.length,
  alertsEvent: stores.alerts.fromEvent.mock.calls.length,
  alertsLoad: stores.alerts.load.mock.calls.length,
  vip: stores.vip.fromEvent.mock.calls.length,
  orderOpen: stores.orders.open.mock.calls.length,
  acked: stores.alerts.markAcked.mock.calls.length,
})
const none = { queue: 0, devices: 0, tasks: 0, orders: 0, alertsEvent: 0, alertsLoad: 0, vip: 0, orderOpen: 0, acked: 0 }

describe('live events reach the right stores', () => {
  it.each([
    ['ticket.issued', {}, { queue: 1 }],
    ['ticket.called', {}, { queue: 1 }],
    ['queue.alert', { message: 'x' }, { queue: 1, alertsEvent: 1 }],
    ['counter.opened', {}, { queue: 1 }],
    ['alert.raised', { id: 1 }, { alertsEvent: 1 }],
    ['alert.acked', { id: 1 }, { acked: 1 }],
    ['alert.acked', {}, { alertsLoad: 1 }],
    ['sync.backlog', {}, { alertsEvent: 1 }],
    ['vip.arrived', { name: '刘女士' }, { vip: 1 }],
    ['device.status', {}, { devices: 1 }],
    ['device.exception', {}, { devices: 1 }],
    ['printer.status', {}, { devices: 1 }],
    ['auth.requested', {}, { tasks: 1 }],
    ['auth.timeout', {}, { tasks: 1, alertsEvent: 1 }],
    ['order.updated', { id: 'O1' }, { orders: 1 }],
    ['order.step', { order_id: 'O7' }, { orders: 1, orderOpen: 1 }],
    ['order.timeout', { id: 'O7' }, { orders: 1, orderOpen: 1, alertsEvent: 1 }],
    ['order.urged', { id: 'O7' }, { orders: 1, orderOpen: 1 }],
    ['order.handed_over', { id: 'O7', from: 'a', to: 'b' }, { orders: 1, orderOpen: 1 }],
    ['order.overdue', { id: 'O1' }, { orders: 1 }],
    ['ocr.completed', {}, {}],
    ['resync', {}, { queue: 1, devices: 1, tasks: 1, orders: 1, alertsLoad: 1 }],
  ])('%s %j', (kind, data, want) => {
    live.dispatch({ kind, data })
    vi.advanceTimersByTime(150)
    expect(calls()).toEqual({ ...none, ...want })
  })
})

it('refetches once for a burst of queue events', () => {
  for (let i = 0; i < 20; i++) live.dispatch({ kind: 'ticket.issued', data: {} })
  vi.advanceTimersByTime(150)
  expect(stores.queue.load).toHaveBeenCalledTimes(1)
})

it('leaves stores alone that no screen has used', () => {
  unwire()
  stores = fakeStores(false)
  unwire = wireLiveEvents(live, stores, { delayMs: 100 })
  for (const kind of ['ticket.called', 'device.status', 'auth.requested', 'order.updated', 'alert.raised', 'resync']) live.dispatch({ kind, data: { id: 'x' } })
  vi.advanceTimersByTime(150)
  expect(calls()).toEqual(none)
})

it('stops listening when unwired', () => {
  unwire()
  live.dispatch({ kind: 'ticket.issued', data: {} })
  vi.advanceTimersByTime(150)
  expect(stores.queue.load).not.toHaveBeenCalled()
  unwire = () => {}
})

describe('the lobby\'s selling half', () => {
  it('arrivals and tickets refresh the customers, leads and coupons; sales refresh the shelf', () => {
    const n = () => ({
      customers: stores.customers.load.mock.calls.length,
      leads: stores.leads.load.mock.calls.length,
      rights: stores.rights.load.mock.calls.length,
      products: stores.products.load.mock.calls.length,
    })
    live.dispatch({ kind: 'customer.arrived', seq: 1, data: { customer_id: 'C-1' } })
    live.dispatch({ kind: 'ticket.issued', seq: 2, data: { number: 'A001' } })
    vi.advanceTimersByTime(150)
    expect(n()).toEqual({ customers: 1, leads: 1, rights: 1, products: 0 })
    live.dispatch({ kind: 'lead.feedback', seq: 3, data: {} })
    live.dispatch({ kind: 'device.transaction', seq: 4, data: { product: 'WM-91' } })
    vi.advanceTimersByTime(150)
    expect(n()).toEqual({ customers: 1, leads: 2, rights: 1, products: 1 })
  })
})

describe('the statistics screen follows the events its figures count', () => {
  let d
  let load
  let off
  beforeEach(() => {
    d = createDispatcher()
    load = vi.fn()
    off = wireStats({ on: d.on }, load, { everyMs: 1000 })
  })
  afterEach(() => off())

  it('reloads once, a moment after a burst of counted events', () => {
    d.dispatch({ kind: 'ticket.issued', data: {} })
    d.dispatch({ kind: 'ticket.served', data: {} })
    d.dispatch({ kind: 'device.transaction', data: {} })
    expect(load).not.toHaveBeenCalled()
    vi.advanceTimersByTime(1000)
    expect(load).toHaveBeenCalledTimes(1)
  })

  it('keeps reloading while events keep coming, at most once a period', () => {
    for (let i = 0; i < 50; i++) {
      d.dispatch({ kind: 'ticket.called', data: {} })
      vi.advanceTimersByTime(100)
    }
    expect(load).toHaveBeenCalledTimes(5)
  })

  it('ignores events that change no figure, and reloads at once on a resync', () => {
    d.dispatch({ kind: 'ticket.moved', data: {} })
    d.dispatch({ kind: 'vip.arrived', data: {} })
    vi.advanceTimersByTime(5000)
    expect(load).not.toHaveBeenCalled()
    d.dispatch({ kind: 'resync', data: {} })
    expect(load).toHaveBeenCalledTimes(1)
  })

  it('listens only to kinds the live stream delivers', () => {
    for (const k of STATS_KINDS) expect(KNOWN_KINDS).toContain(k)
  })

  it('stops when the screen goes', () => {
    d.dispatch({ kind: 'ticket.issued', data: {} })
    off()
    vi.advanceTimersByTime(5000)
    expect(load).not.toHaveBeenCalled()
  })
})

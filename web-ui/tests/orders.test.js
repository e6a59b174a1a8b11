import { describe, expect, it } from 'vitest'
import { filterOrders, nextStep, orderActions, runningStep } from '../src/utils/orderActions.js'
import { normalizeOrder } from '../src/utils/normalize.js'

const order = (status, states, extra = {}) =>
  normalizeOrder({ id: 'O1', title: 'Account', status, steps: states.map((state, i) => ({ key: `s${i}`, name: `s${i}`, state })), ...extra })
const names = (o) => orderActions(o).map((a) => (a.step ? `${a.action}:${a.step.key}` : a.action))

describe('order actions shown per status', () => {
  it.each([
    ['a new order can be approved, urged, handed over or rejected', order('created', ['pending', 'pending']), ['approve', 'urge', 'handover', 'reject']],
    ['an approved order starts its first step', order('approved', ['pending', 'pending']), ['start:s0', 'urge', 'handover', 'reject']],
    ['a running step can be finished or put back in the pool', order('executing', ['active', 'pending']), ['finish:s0', 'recall:s0', 'urge', 'handover']],
    ['a step near its limit is still running', order('executing', ['done', 'near_timeout']), ['finish:s1', 'recall:s1', 'urge', 'handover']],
    ['a step past its limit is still running', order('executing', ['done', 'timeout']), ['finish:s1', 'recall:s1', 'urge', 'handover']],
    ['after a finished step the next one starts', order('executing', ['done', 'pending']), ['start:s1', 'urge', 'handover']],
    ['an order with every step done is delivered', order('executing', ['done', 'done']), ['deliver', 'urge', 'handover']],
    ['a recalled order restarts its step', order('recalled', ['done', 'pending']), ['start:s1', 'urge', 'handover']],
    ['a delivered order has no action', order('delivered', ['done', 'done']), []],
    ['a rejected order has no action', order('rejected', ['pending']), []],
    ['a cancelled order has no action', order('cancelled', ['pending']), []],
  ])('%s', (_n, o, want) => expect(names(o)).toEqual(want))

  it('an executing order with zero steps cannot be delivered (the box refuses it)', () => {
    expect(names(order('executing', []))).toEqual(['urge', 'handover'])
  })
  it('no order, no action', () => expect(orderActions(null)).toEqual([]))
  it('a new order starts no step before it is approved', () => {
    const o = order('created', ['pending'])
    expect(nextStep(o)).toBe(null)
    expect(runningStep(o)).toBe(null)
  })
})

describe('order filters', () => {
  const now = new Date(2026, 11, 6, 10, 0).getTime()
  const today = new Date(2026, 11, 6, 14, 0).toISOString()
  const yesterday = new Date(2026, 11, 5, 14, 0).toISOString()
  const list = [
    { id: 'A', status: 'created', business_type: 'account_opening', appointment_at: today, overdue: false, assignee: null },
    { id: 'B', status: 'executing', business_type: 'corporate_account', appointment_at: yesterday, overdue: true, assignee: 'lobby' },
    { id: 'C', status: 'delivered', business_type: 'account_opening', appointment_at: null, created_at: today, overdue: false, assignee: 'other' },
  ]
  const ids = (filter, me = 'lobby') => filterOrders(list, filter, { me, now }).map((o) => o.id)

  it.each([
    ['no filter shows every order', {}, ['A', 'B', 'C']],
    ['by status', { status: 'executing' }, ['B']],
    ['by business type', { business_type: 'account_opening' }, ['A', 'C']],
    ['today: booked today, or created today when not booked', { today: true }, ['A', 'C']],
    ['overdue: the box\'s mark', { overdue: true }, ['B']],
    ['mine: assigned to the signed-in user', { mine: true }, ['B']],
    ['filters combine', { business_type: 'account_opening', today: true, status: 'created' }, ['A']],
  ])('%s', (_n, f, want) => expect(ids(f)).toEqual(want))

  it('"mine" with nobody signed in shows nothing', () => expect(ids({ mine: true }, null)).toEqual([]))
})

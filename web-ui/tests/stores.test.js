import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { ApiError } from '../src/api/client.js'

vi.mock('../src/api/index.js', () => {
  const api = {
    me: vi.fn(), login: vi.fn(), logout: vi.fn(),
    queue: vi.fn(), issueTicket: vi.fn(), callNext: vi.fn(), ticketAction: vi.fn(), openCounter: vi.fn(), closeCounter: vi.fn(),
    alerts: vi.fn(), ackAlert: vi.fn(), vipArrivals: vi.fn(),
    devices: vi.fn(), deviceExceptions: vi.fn(), signIn: vi.fn(), signOut: vi.fn(), command: vi.fn(), resolveException: vi.fn(),
    tasks: vi.fn(), decide: vi.fn(), orders: vi.fn(), order: vi.fn(), stats: vi.fn(), ocr: vi.fn(),
    orderAction: vi.fn(), orderStep: vi.fn(), staffUsers: vi.fn(),
  }
  return { api, client: {}, setUnauthorizedHandler: vi.fn() }
})

const { api } = await import('../src/api/index.js')
const { useSessionStore } = await import('../src/stores/session.js')
const { useQueueStore } = await import('../src/stores/queue.js')
const { useAlertsStore } = await import('../src/stores/alerts.js')
const { useDevicesStore } = await import('../src/stores/devices.js')
const { useTasksStore } = await import('../src/stores/tasks.js')
const { useVipStore } = await import('../src/stores/vip.js')
const { useOrdersStore } = await import('../src/stores/orders.js')
const { useLiveStore } = await import('../src/stores/live.js')

beforeEach(() => {
  setActivePinia(createPinia())
  vi.clearAllMocks()
  vi.spyOn(console, 'warn').mockImplementation(() => {})
})

describe('session store', () => {
  it('treats a 401 from /auth/me as logged out', async () => {
    api.me.mockRejectedValue(new ApiError(401, 'unauthenticated', 'no'))
    const s = useSessionStore()
    expect(await s.fetchMe()).toBe(null)
    expect(s.checked).toBe(true)
    expect(s.loggedIn).toBe(false)
  })
  it('rethrows other failures of /auth/me', async () => {
    api.me.mockRejectedValue(new ApiError(0, 'network', 'down'))
    await expect(useSessionStore().fetchMe()).rejects.toMatchObject({ code: 'network' })
  })
  it.each([
    ['login answers the user', { username: 'lobby', role: 'lobby_manager' }, null],
    ['login answers {user}', { user: { username: 'lobby', role: 'lobby_manager' } }, null],
    ['login answers nothing useful', { ok: true }, { username: 'lobby', role: 'lobby_manager' }],
  ])('%s', async (_n, loginBody, meBody) => {
    api.login.mockResolvedValue(loginBody)
    api.me.mockResolvedValue(meBody)
    const s = useSessionStore()
    await s.login('lobby', 'pw')
    expect(s.role).toBe('lobby_manager')
    expect(s.loggedIn).toBe(true)
    // the login name, which a VIP's relationship_manager names
    expect(s.loginName).toBe('lobby')
  })
  it('logout forgets the user even if the call fails', async () => {
    api.logout.mockRejectedValue(new ApiError(0, 'network', 'down'))
    const s = useSessionStore()
    s.user = { username: 'x', role: 'supervisor' }
    await expect(s.logout()).rejects.toBeTruthy()
    expect(s.user).toBe(null)
  })
})

describe('queue store', () => {
  const body = { waiting: [{ number: 'A1', service: 'personal' }, { number: 'A2', service: 'personal' }, { number: 'A3', service: 'personal' }], counters: [] }
  it('loads and keeps the last good data on a failed refetch', async () => {
    api.queue.mockResolvedValueOnce(body).mockRejectedValueOnce(new ApiError(500, 'internal', 'db locked'))
    const q = useQueueStore()
    await q.load()
    expect(q.waiting.map((t) => t.number)).toEqual(['A1', 'A2', 'A3'])
    await q.load()
    expect(q.error.message).toBe('db locked')
    expect(q.waiting).toHaveLength(3)
  })
  it('moves optimistically, sends position and reason, then refetches', async () => {
    api.queue.mockResolvedValueOnce(body)
    const q = useQueueStore()
    await q.load()
    let seen = null
    api.ticketAction.mockImplementation(async () => {
      seen = q.waiting.map((t) => t.number)
      return { ok: true }
    })
    api.queue.mockResolvedValueOnce({ ...body, waiting: [body.waiting[2], body.waiting[0], body.waiting[1]] })
    await q.move('A3', 1, 'elderly')
    expect(seen).toEqual(['A3', 'A1', 'A2'])
    expect(api.ticketAction).toHaveBeenCalledWith('A3', 'move', { position: 1, reason: 'elderly' })
    expect(api.queue).toHaveBeenCalledTimes(2)
  })
  it('refetches the box\'s order when a move is refused', async () => {
    api.queue.mockResolvedValue(body)
    const q = useQueueStore()
    await q.load()
    api.ticketAction.mockRejectedValue(new ApiError(409, 'not_waiting', 'A3 已被叫号'))
    await expect(q.move('A3', 1)).rejects.toMatchObject({ code: 'not_waiting' })
    expect(q.waiting.map((t) => t.number)).toEqual(['A1', 'A2', 'A3'])
  })
  it('passes queue_empty through for the screen to say so', async () => {
    api.callNext.mockRejectedValue(new ApiError(404, 'queue_empty', 'empty'))
    await expect(useQueueStore().callNext('1')).rejects.toMatchObject({ status: 404, code: 'queue_empty' })
  })
  it('opens and closes a counter, then shows who staffs which counter', async () => {
    api.openCounter.mockResolvedValue({ counter: '2', open: true, staff: 'teller2', changed: true })
    api.queue.mockResolvedValue({ counters: [
      { id: '1', services: ['personal'], open: false, staff: null },
      { id: '2', services: ['personal'], open: true, staff: 'teller2', since: '2026-12-06T01:00:00.000Z' },
    ] })
    const q = useQueueStore()
    await q.openCounter('2', 'teller2')
    expect(api.openCounter).toHaveBeenCalledWith('2', 'teller2')
    expect(q.counters.map((c) => [c.id, c.open, c.staff])).toEqual([['1', false, null], ['2', true, 'teller2']])
    api.closeCounter.mockResolvedValue({ counter: '2', open: false, staff: 'teller2', served: 3, changed: true })
    api.queue.mockResolvedValue({ counters: [{ id: '2', services: ['personal'], open: false }] })
    await q.closeCounter('2')
    expect(api.closeCounter).toHaveBeenCalledWith('2')
    expect(q.counters[0]).toMatchObject({ id: '2', open: false, staff: null })
  })
  it('passes counter_closed and counter_has_ticket through for the screen to say so', async () => {
    api.callNext.mockRejectedValue(new ApiError(409, 'counter_closed', 'closed'))
    await expect(useQueueStore().callNext('1')).rejects.toMatchObject({ status: 409, code: 'counter_closed' })
    api.closeCounter.mockRejectedValue(new ApiError(409, 'counter_has_ticket', 'A001'))
    await expect(useQueueStore().closeCounter('1')).rejects.toMatchObject({ status: 409, code: 'counter_has_ticket' })
  })
})

describe('alerts store', () => {
  it('upserts alerts with an id and refetches for those without', async () => {
    api.alerts.mockResolvedValue([{ id: 1, kind: 'paper_low', level: 'warn', message: 'a', ts: '2026-11-22T01:00:00Z' }])
    const a = useAlertsStore()
    await a.load()
    a.fromEvent({ kind: 'alert.raised', ts: '2026-11-22T02:00:00Z', data: { id: 2, kind: 'paper_out', level: 'critical', message: 'b' } })
    a.fromEvent({ kind: 'alert.raised', data: { id: 2, kind: 'paper_out', level: 'critical', message: 'b2' } })
    expect(a.data.map((x) => x.id)).toEqual(['2', '1'])
    expect(a.data[0].message).toBe('b2')
    await a.fromEvent({ kind: 'queue.alert', data: { message: 'wait' } })
    expect(api.alerts).toHaveBeenCalledTimes(2)
  })
  it('acknowledges through the API and sorts acknowledged ones last', async () => {
    api.alerts.mockResolvedValue([
      { id: 1, message: 'old', ts: '2026-11-22T01:00:00Z' },
      { id: 2, message: 'new', ts: '2026-11-22T02:00:00Z' },
    ])
    api.ackAlert.mockResolvedValue({})
    const a = useAlertsStore()
    await a.load()
    expect(a.sorted.map((x) => x.id)).toEqual(['2', '1'])
    await a.ack('2')
    expect(api.ackAlert).toHaveBeenCalledWith('2')
    expect(a.sorted.map((x) => x.id)).toEqual(['1', '2'])
    expect(a.unacked).toHaveLength(1)
  })
  it('keeps an alert unacknowledged when the ack fails', async () => {
    api.alerts.mockResolvedValue([{ id: 1 }])
    api.ackAlert.mockRejectedValue(new ApiError(403, 'forbidden', 'no'))
    const a = useAlertsStore()
    await a.load()
    await expect(a.ack('1')).rejects.toMatchObject({ status: 403 })
    expect(a.unacked).toHaveLength(1)
  })
})

describe('devices store', () => {
  it('lets a 409 sign-out refusal through with its exceptions', async () => {
    const refusal = new ApiError(409, 'open_exceptions', 'STM-01 有未处理异常', { exceptions: [{ id: 'e1', code: 'CASH_JAM' }] })
    api.signOut.mockRejectedValue(refusal)
    await expect(useDevicesStore().signOut('STM-01')).rejects.toBe(refusal)
  })
  it('resolves an exception with its note and refetches', async () => {
    api.resolveException.mockResolvedValue({ ok: true })
    api.devices.mockResolvedValue([{ id: 'STM-01', kind: 'stm', open_exceptions: 0 }])
    const d = useDevicesStore()
    d.exceptions['STM-01'] = [{ id: 'e1' }, { id: 'e2' }]
    await d.resolve('STM-01', 'e1', '已清理卡钞')
    expect(api.resolveException).toHaveBeenCalledWith('STM-01', 'e1', '已清理卡钞')
    expect(d.exceptions['STM-01']).toEqual([{ id: 'e2' }])
    expect(d.data[0].open_exceptions).toBe(0)
  })
  it('keeps a screenshot and fails on ok:false results', async () => {
    const d = useDevicesStore()
    api.command.mockResolvedValueOnce({ ok: true, data: { png_base64: 'iVBOR' } })
    await d.command('STM-01', 'screenshot', {})
    expect(d.screenshots['STM-01'].png).toBe('iVBOR')
    api.command.mockResolvedValueOnce({ ok: false, error: 'unknown op' })
    await expect(d.command('STM-01', 'dance', {})).rejects.toThrow('unknown op')
  })
})

describe('tasks store', () => {
  it.each([
    ['approve', {}, { decision: 'approve' }],
    ['reject', { comment: '金额异常' }, { decision: 'reject', comment: '金额异常' }],
    ['redo', { redo: ['face', 'signature'] }, { decision: 'redo', redo: ['face', 'signature'] }],
  ])('%s sends %j', async (decision, opts, body) => {
    api.decide.mockResolvedValue({})
    api.tasks.mockResolvedValue([])
    await useTasksStore().decide('t1', decision, opts)
    expect(api.decide).toHaveBeenCalledWith('t1', body)
  })
  it('refuses a redo without steps before asking the box', async () => {
    await expect(useTasksStore().decide('t1', 'redo', { redo: [] })).rejects.toThrow('redo needs at least one step')
    expect(api.decide).not.toHaveBeenCalled()
  })
})

describe('vip store', () => {
  it('adds live arrivals first and merges the list without duplicates', async () => {
    api.vipArrivals.mockResolvedValue([{ id: 'a1', name: '刘女士', level: 'diamond', ts: '2026-11-22T01:00:00Z', tags: ['周四生日'], relationship_manager: '孙经理' }])
    const v = useVipStore()
    await v.load()
    v.fromEvent({ kind: 'vip.arrived', ts: '2026-11-22T02:00:00Z', data: { id: 'a2', customer: { name: '吴先生', level: 'platinum' } } })
    expect(v.data.map((a) => a.name)).toEqual(['吴先生', '刘女士'])
    expect(v.data[1]).toMatchObject({ tags: ['周四生日'], rm: { name: '孙经理' } })
    await v.load()
    expect(v.data).toHaveLength(2)
  })
  it('marks a box without the list route and still shows live arrivals', async () => {
    api.vipArrivals.mockRejectedValue(new ApiError(404, 'not_found', 'no route'))
    const v = useVipStore()
    await v.load()
    expect(v.unsupported).toBe(true)
    expect(v.error).toBe(null)
    v.fromEvent({ kind: 'vip.arrived', data: { customer_id: 'C1', level: 'gold' } })
    expect(v.data).toHaveLength(1)
    expect(api.vipArrivals).toHaveBeenCalledTimes(1)
  })
  it('shows the ticket the greeted customer took on her arrival only', async () => {
    api.vipArrivals.mockResolvedValue({ arrivals: [
      { id: 7, customer_id: 'C1', name: '刘女士', ts: '2026-11-22T01:00:00Z', tags: [] },
      { id: 6, customer_id: 'C2', name: '吴先生', ts: '2026-11-22T00:50:00Z', tags: [], ticket: 'A003' },
    ] })
    const v = useVipStore()
    await v.load()
    expect(v.data.map((a) => a.ticket)).toEqual([null, 'A003'])
    v.ticketed({ kind: 'vip.ticketed', data: { arrival_id: 7, customer_id: 'C1', number: 'A012' } })
    expect(v.data.map((a) => a.ticket)).toEqual(['A012', 'A003'])
    v.ticketed({ kind: 'vip.ticketed', data: { arrival_id: 99, customer_id: 'C9', number: 'A013' } })
    expect(v.data.map((a) => a.ticket)).toEqual(['A012', 'A003'])
  })
})

describe('orders store', () => {
  it('opens the staff view and reports its error', async () => {
    api.order.mockResolvedValueOnce({ id: 'O1', steps: [{ name: 'verify', state: 'active' }] })
    const o = useOrdersStore()
    await o.open('O1')
    expect(o.current.current_step.name).toBe('verify')
    api.order.mockRejectedValueOnce(new ApiError(404, 'no_such_order', '没有这个订单'))
    await o.open('O2')
    expect(o.currentError.message).toBe('没有这个订单')
  })
  it('an action posts to its route and shows the order the box answers', async () => {
    api.orders.mockResolvedValueOnce([{ id: 'O1', status: 'created', steps: [] }])
    api.order.mockResolvedValueOnce({ id: 'O1', status: 'created', steps: [{ key: 'verify', state: 'pending' }] })
    const o = useOrdersStore()
    await o.load()
    await o.open('O1')
    api.orderAction.mockResolvedValueOnce({ id: 'O1', status: 'approved', approved_by: 'lobby', steps: [{ key: 'verify', state: 'pending' }] })
    await o.act('O1', 'approve')
    expect(api.orderAction).toHaveBeenCalledWith('O1', 'approve', {})
    expect(o.current.approved_by).toBe('lobby')
    expect(o.data[0].status).toBe('approved')
    api.orderStep.mockResolvedValueOnce({ id: 'O1', status: 'executing', steps: [{ key: 'verify', state: 'active' }] })
    await o.act('O1', 'start', { step: 'verify' })
    expect(api.orderStep).toHaveBeenCalledWith('O1', 'verify', 'start')
    expect(o.current.current_step.key).toBe('verify')
    api.orderAction.mockResolvedValueOnce({ id: 'O1', status: 'executing', steps: [] })
    await o.act('O1', 'handover', { to: 'lm2' })
    expect(api.orderAction).toHaveBeenLastCalledWith('O1', 'handover', { to: 'lm2' })
  })
  it('a refused action leaves the order as it was', async () => {
    api.order.mockResolvedValueOnce({ id: 'O1', status: 'created', steps: [] })
    const o = useOrdersStore()
    await o.open('O1')
    api.orderAction.mockRejectedValueOnce(new ApiError(409, 'invalid_order_state', 'no'))
    await expect(o.act('O1', 'reject', { reason: 'x' })).rejects.toMatchObject({ status: 409 })
    expect(api.orderAction).toHaveBeenCalledWith('O1', 'reject', { reason: 'x' })
    expect(o.current.status).toBe('created')
  })
  it('filters the list it holds', async () => {
    api.orders.mockResolvedValueOnce([{ id: 'O1', status: 'created', assignee: 'lobby' }, { id: 'O2', status: 'approved' }])
    const o = useOrdersStore()
    await o.load()
    o.filter.mine = true
    expect(o.filtered('lobby').map((x) => x.id)).toEqual(['O1'])
    o.clearFilter()
    expect(o.filtered('lobby')).toHaveLength(2)
  })
})

describe('live store', () => {
  it('dispatches events and asks for a resync after a reconnect', () => {
    const live = useLiveStore()
    const seen = []
    live.on('*', (e) => seen.push(e.kind))
    live.setStatus('open')
    live.receive({ kind: 'ticket.issued', seq: 3, data: {} })
    live.setStatus('reconnecting')
    live.setStatus('open')
    expect(seen).toEqual(['ticket.issued', 'resync'])
    expect(live.lastSeq).toBe(3)
  })
})

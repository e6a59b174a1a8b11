import { describe, expect, it } from 'vitest'
import {
  alertFromEvent, exceptionsFromError, listOf, normalizeAlert, normalizeDevice, normalizeOrder, normalizeQueue,
  normalizeStats, normalizeTask, ocrRows, serviceFigures, stepTimer, whyList,
} from '../src/utils/normalize.js'

describe('listOf', () => {
  it.each([
    [[1, 2], [1, 2]],
    [{ items: [1] }, [1]],
    [{ alerts: [3] }, [3]],
    [{ data: [4] }, [4]],
    [null, []],
    ['oops', []],
  ])('%j → %j', (body, want) => expect(listOf(body, 'alerts')).toEqual(want))
})

describe('whyList', () => {
  it.each([
    ['vip', [{ code: 'vip', params: {} }]],
    [['vip', 'appointment'], [{ code: 'vip', params: {} }, { code: 'appointment', params: {} }]],
    [[{ code: 'moved', params: { position: 1, by: 'lobby', reason: '老年客户' } }], [{ code: 'moved', params: { position: 1, by: 'lobby', reason: '老年客户' } }]],
    [[{ code: 'fifo' }], [{ code: 'fifo', params: {} }]],
    [[{ params: { min: 3 } }], []],
    [null, []],
    ['', []],
  ])('%j', (why, want) => expect(whyList(why)).toEqual(want))
})

describe('normalizeQueue and serviceFigures', () => {
  const q = normalizeQueue({
    waiting: [
      { number: 'V001', service: 'vip', priority: 10, waited_s: 240, why: 'vip' },
      { number: 'A005', service: 'personal', waited_s: 300 },
      { number: 'A006', service: 'personal', waited_s: 600 },
    ],
    counters: [{ id: 1, services: ['personal', 'corporate'], current: { number: 'A004' } }],
    services: [{ code: 'personal', name: '个人业务', target_wait_s: 900 }],
  })

  it('keeps call order and fills positions and why', () => {
    expect(q.waiting.map((t) => [t.number, t.position])).toEqual([['V001', 1], ['A005', 2], ['A006', 3]])
    expect(q.waiting[0].why).toEqual([{ code: 'vip', params: {} }])
    expect(q.counters[0]).toMatchObject({ id: '1', open: true, current: { number: 'A004' } })
  })

  it('computes figures per service, counters\' services included', () => {
    const f = Object.fromEntries(serviceFigures(q).map((x) => [x.code, x]))
    expect(f.personal).toMatchObject({ name: '个人业务', waiting: 2, longest_s: 600, avg_s: 450, target_s: 900 })
    expect(f.vip).toMatchObject({ waiting: 1, longest_s: 240 })
    expect(f.corporate).toMatchObject({ waiting: 0, longest_s: null, avg_s: null })
  })

  it('prefers the box\'s own figures when sent', () => {
    const f = serviceFigures(normalizeQueue({ waiting: [], services: [{ code: 'corporate', waiting: 4, longest_wait_s: 700, avg_wait_s: 320 }] }))
    expect(f[0]).toMatchObject({ code: 'corporate', waiting: 4, longest_s: 700, avg_s: 320 })
  })

  it('survives an empty or broken answer', () => {
    expect(normalizeQueue(null)).toEqual({ waiting: [], counters: [], services: [] })
    expect(serviceFigures(normalizeQueue({ waiting: 'x' }))).toEqual([])
  })
})

describe('alerts', () => {
  it.each([
    [{ id: 1, kind: 'paper_low', level: 'warning', message: 'm', ts: 't', acked: 0 }, { id: '1', level: 'warn', acked: false }],
    [{ id: 'a', level: 'error' }, { level: 'critical', kind: 'alert' }],
    [{ id: 'b', level: 'bogus' }, { level: 'info' }],
  ])('normalizeAlert %j', (a, want) => expect(normalizeAlert(a)).toMatchObject(want))

  it.each([
    ['alert.raised', { id: 9, kind: 'paper_out', level: 'critical', message: '缺纸' }, { id: '9', kind: 'paper_out', level: 'critical' }],
    ['alert.raised', { alert: { id: 10, kind: 'x', message: 'y' } }, { id: '10', kind: 'x' }],
    ['queue.alert', { service: 'corporate', message: '超时' }, { id: null, kind: 'queue.alert', level: 'warn' }],
    ['sync.backlog', { depth: 12000 }, { kind: 'sync.backlog', level: 'warn' }],
  ])('alertFromEvent %s', (kind, data, want) => {
    expect(alertFromEvent({ kind, data, ts: '2026-11-22T01:00:00Z' })).toMatchObject(want)
  })
})

describe('devices', () => {
  it('fills missing parts', () => {
    expect(normalizeDevice({ id: 'PRN-01', kind: 'printer', online: true })).toMatchObject({
      modules: {}, consumables: {}, cash: { cassettes: [] }, open_exceptions: 0,
    })
  })
  it('accepts open_exceptions as a list', () => {
    expect(normalizeDevice({ id: 'S', open_exceptions: [{ id: 'e1' }] })).toMatchObject({ open_exceptions: 1, exceptions: [{ id: 'e1' }] })
  })
  it.each([
    [{ exceptions: [{ id: 'exc-1', code: 'CASH_JAM', message: '卡钞' }] }, [{ id: 'exc-1', code: 'CASH_JAM' }]],
    [{ open_exceptions: [{ exc_id: 7, code: 'X' }] }, [{ id: '7', code: 'X' }]],
    [{ exceptions: ['CASH_JAM'] }, [{ id: 'CASH_JAM', code: 'CASH_JAM' }]],
    [null, []],
  ])('exceptionsFromError %j', (details, want) => {
    expect(exceptionsFromError({ details })).toMatchObject(want)
  })
})

describe('tasks', () => {
  it('reads an auth request', () => {
    const t = normalizeTask({ request_id: 'r1', device_id: 'STM-02', txn_type: 'withdrawal', customer: { name: '张*', id_number_masked: '3201**1234' }, elements: { amount: 50000 }, reason: 'amount_over_limit' })
    expect(t).toMatchObject({ id: 'r1', state: 'pending', customer: { name: '张*' }, elements: { amount: 50000 } })
  })
})

describe('orders and step timers', () => {
  const o = normalizeOrder({
    id: 7, title: '企业开户',
    steps: [
      { name: 'verify', started_at: '2026-11-22T01:00:00Z', finished_at: '2026-11-22T01:05:00Z', sla_s: 600 },
      { name: 'documents', state: 'active', started_at: '2026-11-22T01:05:00Z', sla_s: 600 },
      { name: 'deliver' },
    ],
  })
  it('infers step states and the current step', () => {
    expect(o.id).toBe('7')
    expect(o.steps.map((s) => s.state)).toEqual(['done', 'active', 'pending'])
    expect(o.current_step.name).toBe('documents')
  })
  const at = (iso) => Date.parse(iso)
  it.each([
    ['finished step uses its own end', 0, '2026-11-22T02:00:00Z', { elapsed_s: 300, level: 'ok' }],
    ['active, early', 1, '2026-11-22T01:07:00Z', { elapsed_s: 120, level: 'ok' }],
    ['active, past 80 %', 1, '2026-11-22T01:14:00Z', { elapsed_s: 540, level: 'near' }],
    ['active, past its SLA', 1, '2026-11-22T01:16:00Z', { elapsed_s: 660, level: 'over' }],
    ['not started', 2, '2026-11-22T01:16:00Z', { elapsed_s: null, level: 'ok' }],
  ])('%s', (_n, i, now, want) => expect(stepTimer(o.steps[i], at(now))).toEqual(want))

  it('trusts the box\'s timeout state', () => {
    expect(stepTimer({ state: 'timeout', elapsed_s: 10, sla_s: 600 }).level).toBe('over')
    expect(stepTimer(null)).toEqual({ elapsed_s: null, level: 'none' })
  })
})

describe('normalizeStats', () => {
  it('gives empty parts for an empty answer', () => {
    expect(normalizeStats({})).toEqual({ date: null, byService: [], txns: [], consumables: [], cassettes: [] })
    expect(normalizeStats(undefined).txns).toEqual([])
  })
  it('reads the documented shape', () => {
    const s = normalizeStats({
      tickets: { by_service: [{ service: 'personal', issued: 86, served: 71, avg_wait_s: 512 }] },
      transactions: { by_type: [{ txn_type: 'withdrawal', count: 64, amount: 181000 }] },
      consumables: { items: [{ item: 'ukey', remaining: 8, daily_use: 4, days_left: 2 }] },
      cash: { cassettes: [{ device_id: 'STM-01', id: 'C1', denom: 100, count: 1800, cash_in: 30000, cash_out: 120000 }] },
    })
    expect(s.byService[0]).toMatchObject({ service: 'personal', issued: 86, served: 71, avg_wait_s: 512, max_wait_s: null })
    expect(s.txns[0]).toEqual({ txn_type: 'withdrawal', count: 64, amount: 181000 })
    expect(s.consumables[0]).toMatchObject({ item: 'ukey', remaining: 8, days_left: 2 })
    expect(s.cassettes[0]).toMatchObject({ id: 'C1', cash_in: 30000, cash_out: 120000 })
  })
  it('accepts flat alternative keys', () => {
    const s = normalizeStats({ transactions_by_type: [{ type: 'deposit', count: '3' }] })
    expect(s.txns).toEqual([{ txn_type: 'deposit', count: 3, amount: null }])
  })
})

describe('ocrRows', () => {
  it('lists ID card fields in order, absent ones marked, chip mismatches from the box', () => {
    const { kind, rows } = ocrRows({
      kind: 'id_card',
      fields: { name: { value: '张三', confidence: 0.98 }, id_number: { value: '321083197812162119', confidence: 0.99, valid: true }, address: { value: '某村', confidence: 0.7 } },
      mismatches: [{ field: 'address', ocr: '某村', chip: '某村 12 号' }],
    })
    expect(kind).toBe('id_card')
    expect(rows.map((r) => r.key)).toEqual(['name', 'gender', 'nation', 'birth_date', 'address', 'id_number'])
    const by = Object.fromEntries(rows.map((r) => [r.key, r]))
    expect(by.gender).toMatchObject({ found: false, value: '' })
    expect(by.id_number).toMatchObject({ valid: true, mismatch: false })
    expect(by.address).toMatchObject({ mismatch: true, chipValue: '某村 12 号', confidence: 0.7 })
  })
  it('computes mismatches from chip data, ignoring spaces and case', () => {
    const { rows } = ocrRows({
      kind: 'id_card',
      fields: { name: { value: '张三' }, id_number: { value: '33010219200403064x' }, address: { value: 'A 村' } },
      chip: { fields: { name: { value: '张三' }, id_number: '33010219200403064X', address: 'B村' } },
    })
    const by = Object.fromEntries(rows.map((r) => [r.key, r]))
    expect(by.name.mismatch).toBe(false)
    expect(by.id_number.mismatch).toBe(false)
    expect(by.address).toMatchObject({ mismatch: true, chipValue: 'B村' })
  })
  it('reads the box\'s chip_check: its mismatches, with the chip\'s values', () => {
    const { rows } = ocrRows({
      kind: 'id_card',
      fields: { name: { value: '张三' }, id_number: { value: '321083197812162119', valid: true }, address: { value: '某村' } },
      chip_check: {
        source: 'IDR-01',
        fields: { name: 'match', id_number: 'match', address: 'mismatch', nation: 'missing' },
        mismatches: ['address'],
        chip: { name: '张三', id_number: '321083197812162119', address: '某村 12 号', nation: '汉' },
        all_match: false,
      },
    })
    const by = Object.fromEntries(rows.map((r) => [r.key, r]))
    expect(by.address).toMatchObject({ mismatch: true, chipValue: '某村 12 号', chip: '某村 12 号' })
    expect(by.name).toMatchObject({ mismatch: false, chip: '张三' })
    expect(by.nation).toMatchObject({ found: false, mismatch: false, chip: '汉' })
  })
  it('uses licence keys for a licence and keeps extra keys', () => {
    const { kind, rows } = ocrRows({ kind: 'licence', fields: { credit_code: { value: '91310110666007217T', valid: true }, authority: { value: '某市监局' } } })
    expect(kind).toBe('licence')
    expect(rows[1]).toMatchObject({ key: 'credit_code', valid: true })
    expect(rows.at(-1).key).toBe('authority')
  })
})

// One schema for the PAD and the box: the statistics the mock server answers (and the PAD is
// built against) must fit the schemas the box serves in its OpenAPI document, and the
// normalisers must read every field the charts use from exactly those names.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { statsForecast, statsPeriod, statsStaffing, statsToday } from '../e2e/stats-fixture.mjs'
import { normalizeForecast, normalizePeriod, normalizeStaffing, normalizeStats } from '../src/utils/normalize.js'

const fragment = JSON.parse(readFileSync(new URL('../../agent/src/stats/openapi.json', import.meta.url), 'utf8'))
const schemas = fragment.schemas

/** Every mismatch of `v` with an OpenAPI 3.0 schema, with its path. */
function check(schema, v, path = '$', errs = []) {
  if (schema.$ref) return check(schemas[schema.$ref.replace('#/components/schemas/', '')], v, path, errs)
  if (schema.allOf) {
    for (const s of schema.allOf) check(s, v, path, errs)
    return errs
  }
  if (v === null) {
    if (schema.type && schema.nullable !== true) errs.push(`${path}: null`)
    return errs
  }
  const is = {
    object: (x) => typeof x === 'object' && !Array.isArray(x),
    array: Array.isArray,
    string: (x) => typeof x === 'string',
    integer: Number.isInteger,
    number: (x) => typeof x === 'number',
    boolean: (x) => typeof x === 'boolean',
  }
  if (schema.type && !is[schema.type](v)) {
    errs.push(`${path}: ${JSON.stringify(v)} is not ${schema.type}`)
    return errs
  }
  if (schema.enum && !schema.enum.includes(v)) errs.push(`${path}: ${v} not in ${schema.enum}`)
  for (const k of schema.required || []) if (!(k in v)) errs.push(`${path}.${k}: missing`)
  for (const [k, s] of Object.entries(schema.properties || {})) if (k in v) check(s, v[k], `${path}.${k}`, errs)
  if (schema.items && Array.isArray(v)) v.forEach((x, i) => check(schema.items, x, `${path}[${i}]`, errs))
  return errs
}

describe('statistics: one schema for the PAD and the box', () => {
  it.each([
    ['StatsToday', statsToday()],
    ['StatsPeriod', statsPeriod(30, 'day')],
    ['StatsPeriod', statsPeriod(7, 'hour')],
    ['StatsPeriod', statsPeriod(90, 'week')],
    ['StatsForecast', statsForecast(7)],
    ['StatsForecast', statsForecast(30)],
    ['StatsStaffing', statsStaffing(7)],
  ])('the mock server\'s %s fits the box\'s schema', (name, body) => {
    expect(check({ $ref: `#/components/schemas/${name}` }, body)).toEqual([])
  })

  it('the checker catches a drift', () => {
    const body = statsToday()
    body.cash.cassettes[0] = { ...body.cash.cassettes[0], cash_in: undefined, deposited: 5 }
    delete body.cash.cassettes[0].cash_in
    expect(check({ $ref: '#/components/schemas/StatsToday' }, body)).toEqual(['$.cash.cassettes[0].cash_in: missing'])
  })

  it('the today screen reads the days left and the cash in and out the box sends', () => {
    const s = normalizeStats(statsToday())
    expect(s.consumables[0]).toMatchObject({ item: 'debit_card', remaining: 120, daily_use: 14, days_left: 8.5 })
    expect(s.cassettes[0]).toMatchObject({ id: 'C1', cash_in: 30000, cash_out: 120000 })
  })

  it('the period, forecast and staffing screens read every list', () => {
    const p = normalizePeriod(statsPeriod(30, 'week'))
    expect(p.tickets.series.length).toBeGreaterThan(0)
    expect(p.cash.cycles[0].cassettes[0].notes_out).toBe(450)
    const f = normalizeForecast(statsForecast(30))
    expect(f.tickets[0]).toMatchObject({ model: 'mstl_ets', history_days: 120 })
    expect(f.tickets[0].days).toHaveLength(30)
    expect(f.vouchers[1]).toMatchObject({ reorder: true, days_left: 2 })
    expect(f.cash[0].cassettes[1]).toMatchObject({ cassette: 'C2', days_until_empty: 1 })
    const st = normalizeStaffing(statsStaffing(2))
    expect(st.hours[0]).toMatchObject({ hour: 9, planned: 3 })
    expect(normalizePeriod({}).steps.by_step).toEqual([])
    expect(normalizeForecast(null).calendar.closed_days).toEqual([])
  })
})

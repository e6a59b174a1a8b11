// The statistics the mock server answers, in the shapes of the schemas the box serves
// (agent/src/stats/openapi.json: StatsToday, StatsPeriod, StatsForecast, StatsStaffing).
// tests/stats-schema.test.js checks them against those schemas, so the PAD is developed
// against what the box really sends.

const DAY = 86400 * 1000
const iso = (t) => new Date(t).toISOString().slice(0, 10)
const today = () => iso(Date.now())

export function statsToday() {
  return {
    date: today(),
    tickets: { by_service: [
      { service: 'personal', name: '个人业务', issued: 86, served: 71, avg_wait_s: 512, max_wait_s: 1480 },
      { service: 'corporate', name: '对公业务', issued: 23, served: 18, avg_wait_s: 690, max_wait_s: 1320 },
      { service: 'vip', name: '贵宾业务', issued: 9, served: 8, avg_wait_s: 140, max_wait_s: 300 },
    ] },
    transactions: { by_type: [
      { txn_type: 'withdrawal', count: 64, amount: 181000 }, { txn_type: 'deposit', count: 41, amount: 52300 },
      { txn_type: 'transfer', count: 28, amount: 930000 }, { txn_type: 'issue_card', count: 12, amount: 0 },
      { txn_type: 'open_account', count: 7, amount: 0 }, { txn_type: 'wealth_purchase', count: 5, amount: 1500000 }, { txn_type: 'statement', count: 19, amount: 0 },
    ] },
    consumables: { items: [
      { item: 'debit_card', device_id: 'STM-01', remaining: 120, used_today: 9, daily_use: 14, days_left: 8.5, runs_out_on: iso(Date.now() + 8 * DAY) },
      { item: 'ukey', device_id: 'STM-01', remaining: 8, used_today: 3, daily_use: 4, days_left: 2, runs_out_on: iso(Date.now() + 2 * DAY) },
      { item: 'receipt_paper_pct', device_id: 'STM-02', remaining: 12, used_today: 5, daily_use: 6, days_left: 2, runs_out_on: iso(Date.now() + 2 * DAY) },
      { item: 'deposit_cert', device_id: 'STM-01', remaining: 48, used_today: 0, daily_use: null, days_left: null, runs_out_on: null },
    ] },
    cash: {
      cassettes: [
        { device_id: 'STM-01', id: 'C1', denom: 100, count: 1800, cash_in: 30000, cash_out: 120000 },
        { device_id: 'STM-01', id: 'C2', denom: 50, count: 400, cash_in: 22300, cash_out: 61000 },
        { device_id: 'STM-02', id: 'C1', denom: 100, count: 2400, cash_in: 0, cash_out: 0 },
      ],
      by_device: [{ device_id: 'STM-01', deposited: 52300, dispensed: 181000 }],
    },
  }
}

const SERVICES = [['personal', 140], ['corporate', 35], ['vip', 12]]
const weekday = (t) => [0.5, 1.18, 1, 0.95, 1, 1.12, 0.62][new Date(t).getUTCDay()]

export function statsPeriod(days = 30, by = 'day') {
  const end = Date.now()
  const dates = Array.from({ length: days }, (_, i) => end - (days - 1 - i) * DAY)
  const monday = (t) => iso(t - ((new Date(t).getUTCDay() + 6) % 7) * DAY)
  const bucket = (t) => (by === 'week' ? monday(t) : iso(t))
  const series = []
  const arrivals = []
  for (const t of dates) {
    for (const [service, base] of SERVICES) {
      const issued = Math.round(base * weekday(t))
      const row = series.find((r) => r.bucket === bucket(t) && r.service === service)
      if (row) { row.issued += issued; row.served += Math.round(issued * 0.93) }
      else series.push({ bucket: bucket(t), service, issued, served: Math.round(issued * 0.93), no_show: Math.round(issued * 0.05), avg_wait_s: 420 })
      if (by === 'hour') for (const [h, share] of [[9, 0.2], [10, 0.3], [14, 0.3], [16, 0.2]]) arrivals.push({ bucket: `${iso(t)}T${h}`, service, issued: Math.round(issued * share) })
    }
  }
  const total = (s) => series.filter((r) => r.service === s).reduce((a, r) => a + r.issued, 0)
  return {
    from: iso(dates[0]), to: iso(end), by,
    tickets: {
      by_service: SERVICES.map(([service, ]) => ({ service, name: null, issued: total(service), called: Math.round(total(service) * 0.95), served: Math.round(total(service) * 0.93), no_show: Math.round(total(service) * 0.05), avg_wait_s: 420, wait_p50_s: 285, wait_p90_s: 975, max_wait_s: 2400, avg_service_s: 310 })),
      series,
    },
    arrivals: { series: arrivals },
    counters: { by_counter: [{ counter: '1', service: 'personal', served: 1400, avg_service_s: 300 }] },
    transactions: {
      by_type: [{ txn_type: 'withdrawal', count: 1100, ok: 1090, amount: 1650000, avg_duration_s: 95 }, { txn_type: 'deposit', count: 640, ok: 640, amount: 1400000, avg_duration_s: 120 }],
      series: dates.map((t) => ({ bucket: bucket(t), device_id: 'STM-01', txn_type: 'withdrawal', count: Math.round(38 * weekday(t)), amount: 57000 })),
    },
    vouchers: {
      by_kind: [{ device_id: 'STM-01', item: 'debit_card', used: 270 }, { device_id: 'STM-01', item: 'ukey', used: 90 }],
      series: dates.flatMap((t) => [{ bucket: bucket(t), device_id: 'STM-01', item: 'debit_card', used: 9 }, { bucket: bucket(t), device_id: 'STM-01', item: 'ukey', used: 3 }]),
    },
    cash: {
      by_device: [{ device_id: 'STM-01', deposited: 420000, dispensed: 1650000, net_out: 1230000 }],
      series: dates.map((t) => ({ bucket: bucket(t), device_id: 'STM-01', deposited: 14000, dispensed: 55000 })),
      cassettes: [{ device_id: 'STM-01', cassette: 'C1', notes_out: 12000, notes_in: 4200, cash_out: 1200000, cash_in: 420000 }],
      cycles: [{ device_id: 'STM-01', cycle_id: `${iso(end)}-1`, started_at: `${iso(end)}T00:30:00.000Z`, updated_at: `${iso(end)}T08:00:00.000Z`, deposited: 14000, dispensed: 55000,
        cassettes: [{ cassette: 'C1', denom: 100, start: 2000, count: 1550, notes_out: 450, notes_in: 0 }] }],
    },
    exceptions: { by_kind: [{ device_id: 'STM-01', module: 'cash', code: 'CASH_JAM', raised: 3, resolved: 3, avg_resolve_s: 900, max_resolve_s: 1500 }] },
    steps: { by_step: [{ step: 'verify', staff: 'super', done: 42, avg_s: 410, max_s: 1300, sla_s: 600, overdue: 5 }] },
  }
}

function series(n, base, start) {
  return Array.from({ length: n }, (_, i) => {
    const t = start + i * DAY
    const p = +(base * weekday(t)).toFixed(1)
    const w = Math.sqrt(p) * (1 + i / 14)
    return { date: iso(t), point: p, lo80: +Math.max(0, p - 1.28 * w).toFixed(1), hi80: +(p + 1.28 * w).toFixed(1), lo95: +Math.max(0, p - 1.96 * w).toFixed(1), hi95: +(p + 1.96 * w).toFixed(1), closed: false }
  })
}

export function statsForecast(horizon = 7) {
  const start = Date.now() + DAY
  const profile = [[9, 0.2], [10, 0.3], [14, 0.3], [16, 0.2]].flatMap(([hour, share]) => [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, hour, share })))
  return {
    from: iso(Date.now()), horizon_days: horizon,
    tickets: SERVICES.map(([service, base]) => ({ service, model: 'mstl_ets', history_days: 120, days: series(horizon, base, start), hourly_profile: profile })),
    transactions: [{ txn_type: 'withdrawal', model: 'mstl_ets', history_days: 120, days: series(horizon, 38, start) }],
    vouchers: [
      { device_id: 'STM-01', item: 'debit_card', model: 'mstl_ets', history_days: 120, days: series(horizon, 9, start), remaining: 120, days_left: 12, runs_out_on: iso(Date.now() + 12 * DAY), reorder: false },
      { device_id: 'STM-01', item: 'ukey', model: 'seasonal_naive', history_days: 20, days: series(horizon, 3, start), remaining: 8, days_left: 2, runs_out_on: iso(Date.now() + 2 * DAY), reorder: true },
    ],
    cash: [{ device_id: 'STM-01', model: 'mstl_ets', history_days: 120, days: series(horizon, 41000, start), on_hand: 200000, days_until_empty: 4, empty_on: iso(Date.now() + 4 * DAY), replenish: true,
      cassettes: [
        { cassette: 'C1', denom: 100, count: 1800, model: 'mstl_ets', days_until_empty: null, empty_on: null },
        { cassette: 'C2', denom: 50, count: 400, model: 'mstl_ets', days_until_empty: 1, empty_on: iso(Date.now() + DAY) },
      ] }],
    calendar: { closed_days: [], working_days: [] },
  }
}

export function statsStaffing(days = 7) {
  const hours = []
  for (let d = 0; d < days; d++) {
    const date = iso(Date.now() + d * DAY)
    for (const [service, base] of SERVICES) {
      for (const [hour, share] of [[9, 0.12], [10, 0.17], [11, 0.14], [12, 0.07], [13, 0.09], [14, 0.15], [15, 0.13], [16, 0.09], [17, 0.04]]) {
        const arrivals = +(base * share).toFixed(1)
        hours.push({ date, hour, service, arrivals, service_s: 300, service_s_measured: true, target_wait_s: 900, needed: Math.max(1, Math.ceil(arrivals * 300 / 3600 + 0.8)), planned: service === 'personal' ? 3 : 1 })
      }
    }
  }
  return { from: iso(Date.now()), days, served_within: 0.9, hours }
}

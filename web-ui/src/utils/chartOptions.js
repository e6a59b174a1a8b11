// ECharts options for the statistics screen, built from normalised stats.
import { formatDuration, formatMoney, formatNumber } from './format.js'

const BLUE = '#1f4e96'
const ORANGE = '#e6892e'
const GREEN = '#07a35a'
const RED = '#d9363e'
const base = {
  textStyle: { fontSize: 14 },
  grid: { left: 12, right: 18, top: 44, bottom: 8, containLabel: true },
  tooltip: { trigger: 'axis', textStyle: { fontSize: 15 } },
  legend: { top: 4, textStyle: { fontSize: 14 }, itemWidth: 18, itemHeight: 12 },
}

/** Tickets issued/served (bars) and average wait in minutes (line) per service. */
export function ticketsOption(byService, { t, service, locale }) {
  return {
    ...base,
    xAxis: { type: 'category', data: byService.map((s) => s.name || service(s.service)), axisLabel: { fontSize: 14 } },
    yAxis: [
      { type: 'value', name: t('stats.tickets'), minInterval: 1 },
      { type: 'value', name: t('stats.minutes'), splitLine: { show: false } },
    ],
    tooltip: {
      ...base.tooltip,
      valueFormatter: undefined,
      formatter: (ps) => {
        const s = byService[ps[0].dataIndex]
        return [
          `<b>${ps[0].name}</b>`,
          `${t('stats.issued')}: ${formatNumber(s.issued)}`,
          s.served !== null ? `${t('stats.served')}: ${formatNumber(s.served)}` : null,
          `${t('stats.avgWait')}: ${formatDuration(s.avg_wait_s, locale)}`,
          s.max_wait_s !== null ? `${t('stats.maxWait')}: ${formatDuration(s.max_wait_s, locale)}` : null,
        ].filter(Boolean).join('<br/>')
      },
    },
    series: [
      { name: t('stats.issued'), type: 'bar', data: byService.map((s) => s.issued), itemStyle: { color: BLUE }, barMaxWidth: 36 },
      { name: t('stats.served'), type: 'bar', data: byService.map((s) => s.served), itemStyle: { color: GREEN }, barMaxWidth: 36 },
      { name: t('stats.avgWaitMin'), type: 'line', yAxisIndex: 1, data: byService.map((s) => (s.avg_wait_s === null ? null : +(s.avg_wait_s / 60).toFixed(1))), itemStyle: { color: ORANGE }, symbolSize: 10, lineStyle: { width: 3 } },
    ],
  }
}

/** STM transactions per type (count), amount in the tooltip. */
export function txnsOption(txns, { t, txn, locale }) {
  return {
    ...base,
    grid: { ...base.grid, top: 16 },
    legend: undefined,
    tooltip: {
      trigger: 'axis',
      formatter: (ps) => {
        const x = txns[ps[0].dataIndex]
        return `<b>${ps[0].name}</b><br/>${t('stats.count')}: ${formatNumber(x.count)}` + (x.amount !== null ? `<br/>${t('stats.amount')}: ${formatMoney(x.amount, locale)}` : '')
      },
    },
    xAxis: { type: 'value', minInterval: 1 },
    yAxis: { type: 'category', data: txns.map((x) => txn(x.txn_type)), axisLabel: { fontSize: 14 }, inverse: true },
    series: [{ type: 'bar', data: txns.map((x) => x.count), itemStyle: { color: BLUE }, barMaxWidth: 28, label: { show: true, position: 'right', fontSize: 14 } }],
  }
}

/** Days left per consumable: red under 3 days, orange under 7. */
export function consumablesOption(items, { t, consumable }) {
  const days = items.map((c) => (c.days_left !== null ? c.days_left : c.remaining !== null && c.daily_use ? +(c.remaining / c.daily_use).toFixed(1) : null))
  const label = (c) => consumable(c.item) + (c.device_id ? ` (${c.device_id})` : '')
  return {
    ...base,
    grid: { ...base.grid, top: 16 },
    legend: undefined,
    tooltip: {
      trigger: 'axis',
      formatter: (ps) => {
        const c = items[ps[0].dataIndex]
        return [`<b>${label(c)}</b>`,
          c.remaining !== null ? `${t('stats.remaining')}: ${formatNumber(c.remaining)}` : null,
          c.daily_use !== null ? `${t('stats.dailyUse')}: ${formatNumber(c.daily_use, 1)}` : null,
          days[ps[0].dataIndex] !== null ? `${t('stats.daysLeft')}: ${days[ps[0].dataIndex]}` : null,
          c.runs_out_on ? `${t('stats.runsOut')}: ${c.runs_out_on}` : null,
        ].filter(Boolean).join('<br/>')
      },
    },
    xAxis: { type: 'value', name: t('stats.days') },
    yAxis: { type: 'category', data: items.map(label), axisLabel: { fontSize: 14 }, inverse: true },
    series: [{
      type: 'bar',
      barMaxWidth: 24,
      data: days.map((d) => ({ value: d, itemStyle: { color: d === null ? '#c8ccd4' : d < 3 ? RED : d < 7 ? ORANGE : GREEN } })),
      label: { show: true, position: 'right', fontSize: 14, formatter: (p) => (p.value === null || p.value === undefined ? '—' : `${p.value}`) },
    }],
  }
}

/** Cash in and out per cassette (stacked by direction), yuan. */
export function cashOption(cassettes, { t, locale }) {
  const name = (c) => (c.device_id ? `${c.device_id} ${c.id}` : c.id) + (c.denom ? ` ¥${c.denom}` : '')
  return {
    ...base,
    tooltip: { trigger: 'axis', valueFormatter: (v) => formatMoney(v, locale) },
    xAxis: { type: 'category', data: cassettes.map(name), axisLabel: { fontSize: 13, interval: 0, rotate: cassettes.length > 6 ? 30 : 0 } },
    yAxis: { type: 'value', axisLabel: { formatter: (v) => formatMoney(v, locale, 'compact') } },
    series: [
      { name: t('stats.cashIn'), type: 'bar', data: cassettes.map((c) => c.cash_in), itemStyle: { color: GREEN }, barMaxWidth: 30 },
      { name: t('stats.cashOut'), type: 'bar', data: cassettes.map((c) => c.cash_out), itemStyle: { color: BLUE }, barMaxWidth: 30 },
      { name: t('stats.onHand'), type: 'bar', data: cassettes.map((c) => (c.denom !== null && c.count !== null ? c.denom * c.count : null)), itemStyle: { color: '#9aa9c7' }, barMaxWidth: 30 },
    ],
  }
}

const PALETTE = [BLUE, GREEN, ORANGE, '#7b5cc4', '#1aa3a3', RED, '#8a6d3b']

/** Buckets in order and one series per key (service, STM, ...), 0 where a bucket lacks it. */
export function pivot(rows, keyOf, valueOf) {
  const buckets = [...new Set(rows.map((r) => r.bucket))].sort()
  const keys = [...new Set(rows.map(keyOf))].sort()
  const at = new Map(rows.map((r) => [`${r.bucket}\u001f${keyOf(r)}`, valueOf(r)]))
  return { buckets, keys, values: keys.map((k) => buckets.map((b) => at.get(`${b}\u001f${k}`) ?? 0)) }
}

/** A series over buckets: one line per key. */
export function seriesOption(rows, { keyOf, valueOf, label, yName, type = 'line', stack = false }) {
  const p = pivot(rows, keyOf, valueOf)
  return {
    ...base,
    xAxis: { type: 'category', data: p.buckets, axisLabel: { fontSize: 12 } },
    yAxis: { type: 'value', name: yName, minInterval: 1 },
    series: p.keys.map((k, i) => ({
      name: label(k),
      type,
      stack: stack ? 'all' : undefined,
      data: p.values[i],
      itemStyle: { color: PALETTE[i % PALETTE.length] },
      barMaxWidth: 28,
      showSymbol: p.buckets.length < 40,
    })),
  }
}

/** A forecast: the point line with its 80% and 95% bands. */
export function forecastOption(f, { t }) {
  const dates = f.days.map((d) => d.date.slice(5))
  const band = (lo, hi, name, color) => [
    { name, type: 'line', stack: name, data: f.days.map((d) => d[lo]), lineStyle: { opacity: 0 }, symbol: 'none', itemStyle: { color }, tooltip: { show: false } },
    { name, type: 'line', stack: name, data: f.days.map((d) => +(d[hi] - d[lo]).toFixed(1)), lineStyle: { opacity: 0 }, symbol: 'none', itemStyle: { color }, areaStyle: { color, opacity: 1 } },
  ]
  return {
    ...base,
    tooltip: {
      trigger: 'axis',
      formatter: (ps) => {
        const d = f.days[ps[0].dataIndex]
        return [`<b>${d.date}</b>`, d.closed ? t('forecast.closed') : null,
          `${t('forecast.point')}: ${formatNumber(d.point, 1)}`,
          `80%: ${formatNumber(d.lo80, 1)} – ${formatNumber(d.hi80, 1)}`,
          `95%: ${formatNumber(d.lo95, 1)} – ${formatNumber(d.hi95, 1)}`].filter(Boolean).join('<br/>')
      },
    },
    legend: { ...base.legend, data: [t('forecast.point'), t('forecast.band80'), t('forecast.band95')] },
    xAxis: { type: 'category', data: dates, boundaryGap: false, axisLabel: { fontSize: 12 } },
    yAxis: { type: 'value', min: 0 },
    series: [
      ...band('lo95', 'hi95', t('forecast.band95'), 'rgba(31, 78, 150, 0.14)'),
      ...band('lo80', 'hi80', t('forecast.band80'), 'rgba(31, 78, 150, 0.30)'),
      { name: t('forecast.point'), type: 'line', data: f.days.map((d) => d.point), itemStyle: { color: BLUE }, lineStyle: { width: 3 }, symbolSize: 6 },
    ],
  }
}

/** Counters needed (bars) beside counters planned (line) for each hour of one day. */
export function staffingOption(hours, { t }) {
  return {
    ...base,
    xAxis: { type: 'category', data: hours.map((h) => `${String(h.hour).padStart(2, '0')}:00`), axisLabel: { fontSize: 12 } },
    yAxis: [
      { type: 'value', name: t('staffing.counters'), minInterval: 1 },
      { type: 'value', name: t('staffing.arrivals'), splitLine: { show: false } },
    ],
    series: [
      { name: t('staffing.needed'), type: 'bar', data: hours.map((h) => ({ value: h.needed, itemStyle: { color: h.needed > h.planned ? RED : GREEN } })), barMaxWidth: 26 },
      { name: t('staffing.planned'), type: 'line', step: 'middle', data: hours.map((h) => h.planned), itemStyle: { color: BLUE }, lineStyle: { width: 3 } },
      { name: t('staffing.arrivals'), type: 'line', yAxisIndex: 1, data: hours.map((h) => h.arrivals), itemStyle: { color: ORANGE }, lineStyle: { type: 'dashed' } },
    ],
  }
}

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

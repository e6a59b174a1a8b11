// Formatting in Chinese conventions (dates 2026年11月22日 09:15, money ¥52,300).

/** The branch's wall clock: every time is shown in Beijing time, whatever the tablet says. */
export const BRANCH_TIME_ZONE = 'Asia/Shanghai'

function toDate(v) {
  if (v === null || v === undefined || v === '') return null
  const d = v instanceof Date ? v : typeof v === 'number' ? new Date(v < 1e12 ? v * 1000 : v) : new Date(v)
  return Number.isNaN(d.getTime()) ? null : d
}

function parts(d, timeZone) {
  const f = new Intl.DateTimeFormat('en-GB', {
    timeZone, year: 'numeric', month: 'numeric', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  })
  const out = {}
  for (const p of f.formatToParts(d)) out[p.type] = p.value
  return out
}

const EN_MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** "2026年11月22日 09:15" (zh) or "22 Nov 2026 09:15" (en); "—" for no date. */
export function formatDateTime(v, locale = 'zh-CN', { timeZone = BRANCH_TIME_ZONE, seconds = false } = {}) {
  const d = toDate(v)
  if (!d) return '—'
  const p = parts(d, timeZone)
  const time = `${p.hour}:${p.minute}${seconds ? ':' + p.second : ''}`
  if (locale.startsWith('zh')) return `${p.year}年${Number(p.month)}月${Number(p.day)}日 ${time}`
  return `${Number(p.day)} ${EN_MONTHS[Number(p.month) - 1]} ${p.year} ${time}`
}

/** "2026年11月22日" / "22 Nov 2026". */
export function formatDate(v, locale = 'zh-CN', { timeZone = BRANCH_TIME_ZONE } = {}) {
  const d = toDate(v)
  if (!d) return '—'
  const p = parts(d, timeZone)
  if (locale.startsWith('zh')) return `${p.year}年${Number(p.month)}月${Number(p.day)}日`
  return `${Number(p.day)} ${EN_MONTHS[Number(p.month) - 1]} ${p.year}`
}

/** "09:15" in branch time. */
export function formatTime(v, { timeZone = BRANCH_TIME_ZONE, seconds = false } = {}) {
  const d = toDate(v)
  if (!d) return '—'
  const p = parts(d, timeZone)
  return `${p.hour}:${p.minute}${seconds ? ':' + p.second : ''}`
}

function groupThousands(n, decimals) {
  const fixed = Math.abs(n).toFixed(decimals)
  const [int, frac] = fixed.split('.')
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  return (n < 0 ? '-' : '') + grouped + (frac ? '.' + frac : '')
}

/** Integer (or fixed decimals) with thousands separators: 1234567 → "1,234,567". */
export function formatNumber(v, decimals = 0) {
  const n = Number(v)
  if (v === null || v === undefined || v === '' || !Number.isFinite(n)) return '—'
  return groupThousands(n, decimals)
}

/**
 * Money in yuan. style "symbol": "¥52,300" (cents shown only when there are some);
 * style "unit": "52,300 元" / "52,300 yuan"; style "compact": "18.1万元" / "¥181.0k".
 */
export function formatMoney(v, locale = 'zh-CN', style = 'symbol') {
  const n = Number(v)
  if (v === null || v === undefined || v === '' || !Number.isFinite(n)) return '—'
  const decimals = Number.isInteger(n) ? 0 : 2
  const zh = locale.startsWith('zh')
  if (style === 'unit') return `${groupThousands(n, decimals)} ${zh ? '元' : 'yuan'}`
  if (style === 'compact') {
    if (zh) {
      if (Math.abs(n) >= 1e8) return `${groupThousands(n / 1e8, 2)}亿元`
      if (Math.abs(n) >= 1e4) return `${groupThousands(n / 1e4, 1)}万元`
      return `${groupThousands(n, decimals)}元`
    }
    if (Math.abs(n) >= 1e6) return `¥${groupThousands(n / 1e6, 1)}M`
    if (Math.abs(n) >= 1e3) return `¥${groupThousands(n / 1e3, 1)}k`
    return `¥${groupThousands(n, decimals)}`
  }
  return `${n < 0 ? '-' : ''}¥${groupThousands(Math.abs(n), decimals)}`
}

/** Seconds as "12分05秒" / "1小时02分" (zh) or "12m 05s" / "1h 02m" (en). */
export function formatDuration(seconds, locale = 'zh-CN') {
  const s = Math.round(Number(seconds))
  if (seconds === null || seconds === undefined || !Number.isFinite(s)) return '—'
  const neg = s < 0
  const a = Math.abs(s)
  const h = Math.floor(a / 3600)
  const m = Math.floor((a % 3600) / 60)
  const sec = a % 60
  const pad = (x) => String(x).padStart(2, '0')
  const zh = locale.startsWith('zh')
  let out
  if (h > 0) out = zh ? `${h}小时${pad(m)}分` : `${h}h ${pad(m)}m`
  else if (m > 0) out = zh ? `${m}分${pad(sec)}秒` : `${m}m ${pad(sec)}s`
  else out = zh ? `${sec}秒` : `${sec}s`
  return neg ? `-${out}` : out
}

/** Seconds elapsed since `ts` at `now` (ms), never negative. */
export function secondsSince(ts, now = Date.now()) {
  const d = toDate(ts)
  if (!d) return null
  return Math.max(0, Math.floor((now - d.getTime()) / 1000))
}

/** Fen (integer hundredths of a yuan) as "¥8,250.00"; "—" for nothing. */
export function formatFen(fen) {
  if (fen === null || fen === undefined || fen === '' || !Number.isFinite(Number(fen))) return '—'
  const n = Math.trunc(Number(fen))
  const abs = Math.abs(n)
  const yuan = Math.floor(abs / 100)
  const cents = String(abs % 100).padStart(2, '0')
  const text = `¥${groupThousands(yuan, 0)}.${cents}`
  return (n < 0 ? '-' : '') + text
}

/** Basis points a year as a percentage: 275 → "2.75%". */
export function formatRate(bp) {
  if (bp === null || bp === undefined || bp === '' || !Number.isFinite(Number(bp))) return '—'
  return `${(Number(bp) / 100).toFixed(2)}%`
}

/** A range of basis points: "2.30%–2.80%" (one figure when both ends agree). */
export function formatRateRange(lo, hi) {
  if (lo === null || lo === undefined) return formatRate(hi)
  if (hi === null || hi === undefined || Number(lo) === Number(hi)) return formatRate(lo)
  return `${formatRate(lo)}–${formatRate(hi)}`
}

/**
 * What staff type for an amount of yuan ("8,250.5", "100000") as integer fen, read from the
 * digits so no floating point rounds it; null for anything that is not an amount.
 */
export function yuanToFen(text) {
  const s = String(text ?? '').replace(/[,\s¥元]/g, '')
  const m = /^(\d{1,13})(?:\.(\d{0,2}))?$/.exec(s)
  if (!m) return null
  return Number(m[1]) * 100 + Number((m[2] || '').padEnd(2, '0'))
}

/** Percent typed by staff ("2.75") as basis points (275); null when it is not one. */
export function percentToBp(text) {
  const s = String(text ?? '').replace(/[%\s]/g, '')
  const m = /^(\d{1,3})(?:\.(\d{0,2}))?$/.exec(s)
  if (!m) return null
  const bp = Number(m[1]) * 100 + Number((m[2] || '').padEnd(2, '0'))
  return bp <= 10000 ? bp : null
}

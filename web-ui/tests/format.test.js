import { describe, expect, it } from 'vitest'
import { formatDate, formatDateTime, formatDuration, formatFen, formatMoney, formatNumber, formatRate, formatRateRange, formatTime, percentToBp, secondsSince, yuanToFen } from '../src/utils/format.js'

describe('formatDateTime', () => {
  it.each([
    ['2026-11-22T01:15:02.318Z', 'zh-CN', '2026年11月22日 09:15'],
    ['2026-11-22T09:05:00+08:00', 'zh-CN', '2026年11月22日 09:05'],
    ['2026-01-03T16:30:00Z', 'zh-CN', '2026年1月4日 00:30'],
    ['2026-11-22T01:15:02Z', 'en', '22 Nov 2026 09:15'],
    [null, 'zh-CN', '—'],
    ['not a date', 'zh-CN', '—'],
  ])('%s in %s → %s', (input, locale, want) => {
    expect(formatDateTime(input, locale)).toBe(want)
  })

  it('accepts epoch seconds and milliseconds alike', () => {
    expect(formatDateTime(1795310102, 'zh-CN')).toBe(formatDateTime(1795310102000, 'zh-CN'))
  })

  it('can show seconds', () => {
    expect(formatDateTime('2026-11-22T01:15:02Z', 'zh-CN', { seconds: true })).toBe('2026年11月22日 09:15:02')
  })

  it('formats dates and times alone', () => {
    expect(formatDate('2026-11-22T20:00:00Z', 'zh-CN')).toBe('2026年11月23日')
    expect(formatDate('2026-11-22T01:00:00Z', 'en')).toBe('22 Nov 2026')
    expect(formatTime('2026-11-22T01:05:00Z')).toBe('09:05')
  })
})

describe('formatMoney', () => {
  it.each([
    [52300, 'zh-CN', 'symbol', '¥52,300'],
    [181000, 'zh-CN', 'symbol', '¥181,000'],
    [1234567.5, 'zh-CN', 'symbol', '¥1,234,567.50'],
    [-2500, 'zh-CN', 'symbol', '-¥2,500'],
    [0, 'zh-CN', 'symbol', '¥0'],
    [52300, 'zh-CN', 'unit', '52,300 元'],
    [52300, 'en', 'unit', '52,300 yuan'],
    [181000, 'zh-CN', 'compact', '18.1万元'],
    [250000000, 'zh-CN', 'compact', '2.50亿元'],
    [800, 'zh-CN', 'compact', '800元'],
    [181000, 'en', 'compact', '¥181.0k'],
    [null, 'zh-CN', 'symbol', '—'],
    ['abc', 'zh-CN', 'symbol', '—'],
  ])('%s (%s, %s) → %s', (v, locale, style, want) => {
    expect(formatMoney(v, locale, style)).toBe(want)
  })
})

describe('formatNumber', () => {
  it.each([
    [1800, 0, '1,800'],
    [999, 0, '999'],
    [1234567, 0, '1,234,567'],
    [8.567, 1, '8.6'],
    [undefined, 0, '—'],
  ])('%s → %s', (v, d, want) => expect(formatNumber(v, d)).toBe(want))
})

describe('formatDuration', () => {
  it.each([
    [0, 'zh-CN', '0秒'],
    [45, 'zh-CN', '45秒'],
    [725, 'zh-CN', '12分05秒'],
    [3720, 'zh-CN', '1小时02分'],
    [725, 'en', '12m 05s'],
    [3720, 'en', '1h 02m'],
    [-30, 'zh-CN', '-30秒'],
    [null, 'zh-CN', '—'],
  ])('%s s (%s) → %s', (s, locale, want) => expect(formatDuration(s, locale)).toBe(want))
})

describe('secondsSince', () => {
  it('counts whole seconds and never goes negative', () => {
    const now = Date.parse('2026-11-22T01:00:00Z')
    expect(secondsSince('2026-11-22T00:58:30Z', now)).toBe(90)
    expect(secondsSince('2026-11-22T01:00:05Z', now)).toBe(0)
    expect(secondsSince(null, now)).toBe(null)
  })
})

describe('money in fen and rates in basis points', () => {
  it.each([
    [825000, '¥8,250.00'],
    [19444, '¥194.44'],
    [1, '¥0.01'],
    [0, '¥0.00'],
    [-530727, '-¥5,307.27'],
    [null, '—'],
  ])('formatFen(%j) is %s', (fen, want) => expect(formatFen(fen)).toBe(want))

  it.each([
    [275, '2.75%'],
    [5, '0.05%'],
    [10000, '100.00%'],
  ])('formatRate(%j) is %s', (bp, want) => expect(formatRate(bp)).toBe(want))

  it('formats a range, or one figure when both ends agree', () => {
    expect(formatRateRange(230, 280)).toBe('2.30%–2.80%')
    expect(formatRateRange(300, 300)).toBe('3.00%')
    expect(formatRateRange(null, 300)).toBe('3.00%')
  })

  it.each([
    ['100000', 10000000],
    ['8,250.5', 825050],
    ['0.01', 1],
    ['¥1,000.99', 100099],
    ['1.005', null],
    ['-5', null],
    ['abc', null],
    ['', null],
  ])('yuanToFen(%j) is %j (read from the digits, no float rounding)', (text, want) => expect(yuanToFen(text)).toBe(want))

  it.each([
    ['2.75', 275],
    ['4.9', 490],
    ['0', 0],
    ['3.125', null],
    ['101', null],
  ])('percentToBp(%j) is %j', (text, want) => expect(percentToBp(text)).toBe(want))
})

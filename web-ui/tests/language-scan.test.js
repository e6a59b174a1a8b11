import { describe, expect, it } from 'vitest'
import { foreignText } from '../e2e/language.mjs'

describe('the language scan of PAD screens', () => {
  it('finds a raw alert code and an English sentence in the Chinese UI', () => {
    const bad = foreignText(['告警', 'device.consumable_low', '等候 queue.wait 超时', 'VIP arrived at entrance'], 'zh-CN')
    expect(bad).toEqual([
      'raw code "device.consumable_low" in "device.consumable_low"',
      'raw code "queue.wait" in "等候 queue.wait 超时"',
      'English "VIP arrived at entrance"',
    ])
  })

  it('lets names, numbers, times and short marks pass in the Chinese UI', () => {
    expect(foreignText(['STM-01', 'A012', '12:30', 'VIP', 'OCR 识别', '3.5%', '¥1,000.00', 'v1.2'], 'zh-CN')).toEqual([])
  })

  it('finds Chinese in the English UI and nothing else', () => {
    expect(foreignText(['Lobby', 'Waiting 3', '大堂'], 'en')).toEqual(['Chinese "大堂"'])
    expect(foreignText(['Ticket A012, please go to counter 2'], 'en')).toEqual([])
  })
})

import { describe, expect, it } from 'vitest'
import { fillFields, openOrders } from '../src/utils/ocrFill.js'

describe('OCR back-fill', () => {
  it('fills every non-empty ID card field with its source, and marks corrections', () => {
    const rows = [
      { key: 'name', value: '张三', original: '张三', chip: '张三' },
      { key: 'address', value: '江苏省兴化市英武路1号', original: '江苏省兴化市英武路l号', chip: null },
      { key: 'id_number', value: '321083197812162119', original: '321083197812162118', chipValue: '321083197812162119', mismatch: true },
      { key: 'nation', value: '', original: '' },
      { key: 'scope', value: '零售', original: '零售' },
    ]
    expect(fillFields(rows, { id_number: true })).toEqual({
      name: { value: '张三', source: 'chip' },
      address: { value: '江苏省兴化市英武路1号', source: 'photo', edited: true },
      id_number: { value: '321083197812162119', source: 'chip' },
    })
  })

  it('offers only open orders', () => {
    const list = [{ id: 'a', status: 'created' }, { id: 'b', status: 'delivered' }, { id: 'c', status: 'executing' }, { id: 'd', status: 'cancelled' }]
    expect(openOrders(list).map((o) => o.id)).toEqual(['a', 'c'])
  })
})

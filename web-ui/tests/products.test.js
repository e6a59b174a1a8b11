import { describe, expect, it } from 'vitest'
import { MAX_COMPARE, normalizeProduct, toggleCompare } from '../src/stores/products.js'
import { normalizeCustomer } from '../src/stores/customers.js'

describe('products', () => {
  it('a product from the box gets every figure, null when absent', () => {
    const p = normalizeProduct({ code: 'WM-91', name_zh: '稳利91天', type: 'wealth', return_min_bp: 230, return_max_bp: 280, hq_sales: 5400, branch_sales: 2, risk: 'R2' })
    expect(p).toMatchObject({ code: 'WM-91', name_en: '稳利91天', rate_bp: null, return_min_bp: 230, sales: 5402, channels: [], on_sale: true })
  })

  it('compares at most three products', () => {
    let list = []
    for (const c of ['A', 'B', 'C']) list = toggleCompare(list, c).list
    expect(list).toEqual(['A', 'B', 'C'])
    const full = toggleCompare(list, 'D')
    expect(full).toEqual({ list: ['A', 'B', 'C'], full: true })
    expect(toggleCompare(list, 'B').list).toEqual(['A', 'C'])
    expect(MAX_COMPARE).toBe(3)
  })
})

describe('customers', () => {
  it('a customer from the box keeps its lists and state', () => {
    const c = normalizeCustomer({ customer_id: 'C-1', name: '王芳', via: ['ticket'], marks: [{ kind: 'birthday', date: '2026-12-06', days: 0 }], waited_s: '65' })
    expect(c).toMatchObject({ customer_id: 'C-1', via: ['ticket'], state: 'arrived', waited_s: 65 })
    expect(normalizeCustomer(null)).toMatchObject({ customer_id: '', via: [], marks: [] })
  })
})

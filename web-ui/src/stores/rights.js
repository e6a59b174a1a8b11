import { defineStore } from 'pinia'
import { api } from '../api/index.js'
import { listOf } from '../utils/normalize.js'
import { loadInto, resourceState } from './resource.js'

export const useRightsStore = defineStore('rights', {
  state: () => ({ ...resourceState([]), redeemed: [] }),
  getters: {
    /** Available coupons of one customer. */
    of: (s) => (customerId) => s.data.filter((r) => r.customer_id === customerId),
  },
  actions: {
    /** The coupons of everyone in the branch today. */
    load() {
      return loadInto(this, () => api.rights(), (b) => listOf(b, 'rights'))
    },
    check(code, customerId) {
      return api.checkCoupon(code, customerId)
    },
    async redeem(code, customerId) {
      const r = await api.redeemCoupon(code, customerId)
      this.redeemed = [r, ...this.redeemed]
      this.data = this.data.filter((c) => c.coupon_id !== (r.coupon && r.coupon.coupon_id))
      return r
    },
  },
})

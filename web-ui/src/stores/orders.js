import { defineStore } from 'pinia'
import { api } from '../api/index.js'
import { listOf, normalizeOrder } from '../utils/normalize.js'
import { filterOrders } from '../utils/orderActions.js'
import { loadInto, resourceState } from './resource.js'

/** The list's filters: '' is "any". */
export const NO_FILTER = Object.freeze({ status: '', business_type: '', today: false, overdue: false, mine: false })

export const useOrdersStore = defineStore('orders', {
  state: () => ({
    ...resourceState([]),
    current: null,
    currentError: null,
    currentLoading: false,
    filter: { ...NO_FILTER },
    staff: [],
  }),
  getters: {
    // The list is every order the box keeps (open ones first), so it is filtered here.
    filtered: (s) => (me) => filterOrders(s.data, s.filter, { me, now: Date.now() }),
    businessTypes: (s) => [...new Set(s.data.map((o) => o.business_type).filter(Boolean))].sort(),
  },
  actions: {
    load() {
      return loadInto(this, () => api.orders(), (b) => listOf(b, 'orders').map(normalizeOrder))
    },
    async open(id) {
      this.currentLoading = true
      try {
        this.current = normalizeOrder(await api.order(id))
        this.currentError = null
      } catch (e) {
        this.currentError = e
      } finally {
        this.currentLoading = false
      }
    },
    close() {
      this.current = null
      this.currentError = null
    },
    clearFilter() {
      this.filter = { ...NO_FILTER }
    },
    /**
     * Runs a staff action on an order (`approve`, `reject`, `start`, `finish`, `deliver`,
     * `recall`, `urge`, `handover`); the box answers the order's new staff view, shown at
     * once. Errors are thrown to the caller, which tells the user.
     */
    async act(id, action, { step, reason, to } = {}) {
      let body
      if (action === 'start' || action === 'finish') body = await api.orderStep(id, step, action)
      else if (action === 'reject') body = await api.orderAction(id, 'reject', { reason })
      else if (action === 'handover') body = await api.orderAction(id, 'handover', { to })
      else body = await api.orderAction(id, action, {})
      const o = normalizeOrder(body)
      if (this.current && this.current.id === o.id) this.current = o
      const i = this.data.findIndex((x) => x.id === o.id)
      if (i >= 0) this.data[i] = { ...this.data[i], ...o }
      return o
    },
    async loadStaff() {
      const body = await api.staffUsers()
      this.staff = listOf(body, 'users')
      return this.staff
    },
  },
})

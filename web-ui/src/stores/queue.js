import { defineStore } from 'pinia'
import { api } from '../api/index.js'
import { normalizeQueue, serviceFigures } from '../utils/normalize.js'
import { loadInto, resourceState } from './resource.js'

export const useQueueStore = defineStore('queue', {
  state: () => resourceState(normalizeQueue({})),
  getters: {
    waiting: (s) => s.data.waiting,
    counters: (s) => s.data.counters,
    figures: (s) => serviceFigures(s.data),
    /** Service codes known from the box (services, counters, tickets). */
    serviceCodes() {
      return this.figures.map((f) => f.code).filter(Boolean)
    },
  },
  actions: {
    load() {
      return loadInto(this, () => api.queue(), normalizeQueue)
    },
    async issue(service) {
      const t = await api.issueTicket(service)
      await this.load()
      return t
    },
    async callNext(counterId) {
      const t = await api.callNext(counterId)
      await this.load()
      return t
    },
    /** Open a counter with `staff` at it (the caller when not given). */
    async openCounter(counterId, staff) {
      const r = await api.openCounter(counterId, staff)
      await this.load()
      return r
    },
    async closeCounter(counterId) {
      const r = await api.closeCounter(counterId)
      await this.load()
      return r
    },
    async act(number, action, body) {
      const r = await api.ticketAction(number, action, body)
      await this.load()
      return r
    },
    /** Optimistic reorder for a drag, then the box's word. */
    async move(number, position, reason) {
      const list = this.data.waiting
      const from = list.findIndex((t) => t.number === number)
      if (from >= 0) {
        const [t] = list.splice(from, 1)
        list.splice(Math.max(0, Math.min(list.length, position - 1)), 0, t)
      }
      try {
        return await api.ticketAction(number, 'move', reason ? { position, reason } : { position })
      } finally {
        await this.load()
      }
    },
  },
})

import { defineStore } from 'pinia'
import { api } from '../api/index.js'
import { listOf, normalizeTask } from '../utils/normalize.js'
import { loadInto, resourceState } from './resource.js'

export const useTasksStore = defineStore('tasks', {
  state: () => resourceState([]),
  getters: {
    pending: (s) => s.data.filter((t) => t.state === 'pending' || t.state === 'waiting' || t.state === 'redo'),
  },
  actions: {
    load() {
      return loadInto(this, () => api.tasks(), (b) => listOf(b, 'tasks').map(normalizeTask))
    },
    /** decision: approve | reject | redo; redo: a non-empty subset of face|elements|signature. */
    async decide(id, decision, { redo = [], comment = '' } = {}) {
      if (decision === 'redo' && redo.length === 0) throw new Error('redo needs at least one step')
      const body = { decision }
      if (decision === 'redo') body.redo = redo
      if (comment) body.comment = comment
      const r = await api.decide(id, body)
      await this.load()
      return r
    },
  },
})

// Shared shape of a store that shows one API resource: data, loading, error, active.

export function resourceState(initial) {
  return { data: initial, loading: false, error: null, loadedAt: null, active: false }
}

/** Runs `fetcher` into the store, keeping the last good data if a refetch fails. */
export async function loadInto(store, fetcher, transform = (x) => x) {
  store.active = true
  store.loading = true
  try {
    const body = await fetcher()
    store.data = transform(body)
    store.error = null
    store.loadedAt = Date.now()
  } catch (e) {
    store.error = e
    if (e.status !== 401) console.warn('load failed:', e.message)
  } finally {
    store.loading = false
  }
  return store.data
}

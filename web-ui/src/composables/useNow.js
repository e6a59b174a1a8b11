import { onBeforeUnmount, onMounted, ref } from 'vue'

/** A clock for on-screen timers (waits, step SLAs); it ticks the display, it fetches nothing. */
export function useNow(intervalMs = 1000) {
  const now = ref(Date.now())
  let t = null
  onMounted(() => {
    t = setInterval(() => (now.value = Date.now()), intervalMs)
  })
  onBeforeUnmount(() => clearInterval(t))
  return now
}

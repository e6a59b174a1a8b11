// OCR back-fill (反填): what of a confirmed ID card goes into an order's customer section.

/** The ID card fields an order's customer section takes (the box refuses any other). */
export const FILL_KEYS = ['name', 'gender', 'nation', 'birth_date', 'address', 'id_number', 'issuing_authority', 'valid_from', 'valid_to']

const OPEN = ['created', 'approved', 'executing', 'recalled']

const squash = (v) => String(v ?? '').replace(/\s+/g, '').toUpperCase()

/**
 * The fields to fill in from the OCR screen's rows: every non-empty value of a fillable
 * field, with its source — `chip` when the value is the chip's (taken from it, or the photo
 * agreeing with it), `photo` otherwise — and whether the staff corrected the recognised value.
 */
export function fillFields(rows, confirmed = {}) {
  const out = {}
  for (const r of rows || []) {
    if (!FILL_KEYS.includes(r.key)) continue
    const value = String(r.value ?? '').trim()
    if (!value) continue
    const chip = r.chipValue ?? r.chip
    const fromChip = chip !== null && chip !== undefined && squash(chip) === squash(value)
    const edited = value !== String(r.original ?? '').trim() && !(fromChip && confirmed[r.key])
    out[r.key] = edited ? { value, source: fromChip ? 'chip' : 'photo', edited: true } : { value, source: fromChip ? 'chip' : 'photo' }
  }
  return out
}

/** The orders a document can be filled into: the open ones, in the list's order. */
export function openOrders(orders) {
  return (orders || []).filter((o) => OPEN.includes(o.status))
}

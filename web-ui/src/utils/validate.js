// Check rules for identity fields (GB 11643-1999 ID number, GB 32100-2015 credit code).

const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
const ID_CHECK = '10X98765432'

/** True for a valid 18-character citizen ID number with a real birth date. */
export function isValidIdNumber(s) {
  if (typeof s !== 'string') return false
  const v = s.trim().toUpperCase()
  if (!/^\d{17}[\dX]$/.test(v)) return false
  const y = Number(v.slice(6, 10))
  const mo = Number(v.slice(10, 12))
  const d = Number(v.slice(12, 14))
  const date = new Date(Date.UTC(y, mo - 1, d))
  if (y < 1800 || date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return false
  let sum = 0
  for (let i = 0; i < 17; i++) sum += Number(v[i]) * ID_WEIGHTS[i]
  return ID_CHECK[sum % 11] === v[17]
}

const CC_CHARSET = '0123456789ABCDEFGHJKLMNPQRTUWXY'
const CC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]

/** True for a valid 18-character unified social credit code. */
export function isValidCreditCode(s) {
  if (typeof s !== 'string') return false
  const v = s.trim().toUpperCase()
  if (v.length !== 18) return false
  let sum = 0
  for (let i = 0; i < 17; i++) {
    const c = CC_CHARSET.indexOf(v[i])
    if (c < 0) return false
    sum += c * CC_WEIGHTS[i]
  }
  const check = CC_CHARSET.indexOf(v[17])
  return check >= 0 && CC_CHARSET[(31 - (sum % 31)) % 31] === v[17]
}

/** The check rule for a field key, or null when the field has none. */
export function ruleFor(key) {
  if (key === 'id_number') return isValidIdNumber
  if (key === 'credit_code') return isValidCreditCode
  if (key === 'birth_date' || key === 'established') return (v) => /^\d{4}-\d{2}-\d{2}$/.test(String(v || '').trim())
  return null
}

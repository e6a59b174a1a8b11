import { describe, expect, it } from 'vitest'
import { isValidCreditCode, isValidIdNumber, ruleFor } from '../src/utils/validate.js'

describe('isValidIdNumber (GB 11643-1999)', () => {
  it.each([
    ['321083197812162119', true],
    ['150102198807303035', true],
    ['33010219200403064X', true],
    ['33010219200403064x', true],
    ['321083197812162118', false], // wrong check digit
    ['321083197802302119', false], // 30 February
    ['32108319781216211', false], // too short
    ['32108319781216211A', false],
    ['', false],
    [null, false],
  ])('%s → %s', (v, want) => expect(isValidIdNumber(v)).toBe(want))
})

describe('isValidCreditCode (GB 32100-2015)', () => {
  it.each([
    ['91310110666007217T', true],
    ['91310115591693856A', true],
    ['91110108700338416R', true],
    ['91350203M0001QAY9B', false],
    ['91310110666007217A', false],
    ['9131011066600721IT', false], // I is not in the charset
    ['91310110666007217', false],
    [undefined, false],
  ])('%s → %s', (v, want) => expect(isValidCreditCode(v)).toBe(want))
})

describe('ruleFor', () => {
  it('has rules for checked fields only', () => {
    expect(ruleFor('id_number')('321083197812162119')).toBe(true)
    expect(ruleFor('credit_code')('91350203M0001QAY9B')).toBe(false)
    expect(ruleFor('birth_date')('1978-12-16')).toBe(true)
    expect(ruleFor('birth_date')('1978年12月16日')).toBe(false)
    expect(ruleFor('name')).toBe(null)
  })
})

//! Check characters of identity numbers, read from chips or recognised from photos.
//!
//! - Citizen ID number, GB 11643-1999: 17 digits, then a check character from
//!   `"10X98765432"[Σ dᵢ·Wᵢ mod 11]`; the birth date (digits 7–14) must be a real date.
//! - Unified social credit code, GB 32100-2015: 18 characters of
//!   `0123456789ABCDEFGHJKLMNPQRTUWXY`; the last is `charset[(31 − Σ cᵢ·Wᵢ mod 31) mod 31]`.
//!
//! OCR confuses a few glyph pairs; [`suggest_citizen_id`] and [`suggest_credit_code`]
//! propose the one correction that makes a number valid when exactly one exists.

use chrono::NaiveDate;

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Glyphs OCR confuses, both ways.
const LOOKALIKES: [(char, char); 5] = [('O', '0'), ('I', '1'), ('S', '5'), ('B', '8'), ('Z', '2')];

/// Why a number is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// Not 18 characters.
    #[error("expected 18 characters, got {0}")]
    Length(usize),
    /// A character not allowed at that position.
    #[error("invalid character {found:?} at position {position}")]
    Char {
        /// 0-based position.
        position: usize,
        /// The character found.
        found: char,
    },
    /// The birth date inside a citizen ID number is not a real date.
    #[error("invalid birth date {0}")]
    BirthDate(String),
    /// The check character does not match.
    #[error("check character should be {expected}, found {found}")]
    CheckChar {
        /// The computed check character.
        expected: char,
        /// The one in the number.
        found: char,
    },
}

fn chars18(s: &str) -> Result<Vec<char>, CheckError> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 18 {
        return Err(CheckError::Length(chars.len()));
    }
    Ok(chars)
}

/// The check character of a citizen ID number from its first 17 digits.
pub fn citizen_id_check_char(first17: &str) -> Result<char, CheckError> {
    let digits: Vec<char> = first17.chars().collect();
    if digits.len() != 17 {
        return Err(CheckError::Length(digits.len() + 1));
    }
    let mut sum = 0;
    for (position, (c, w)) in digits.iter().zip(ID_WEIGHTS).enumerate() {
        let d = c.to_digit(10).ok_or(CheckError::Char {
            position,
            found: *c,
        })?;
        sum += d * w;
    }
    Ok(char::from(ID_CHECK[(sum % 11) as usize]))
}

/// Validates a citizen ID number (check character, upper-case `X`, and a real birth date).
pub fn validate_citizen_id(id: &str) -> Result<(), CheckError> {
    let chars = chars18(id)?;
    let first17: String = chars[..17].iter().collect();
    let expected = citizen_id_check_char(&first17)?;
    let birth: String = chars[6..14].iter().collect();
    if NaiveDate::parse_from_str(&birth, "%Y%m%d").is_err() {
        return Err(CheckError::BirthDate(birth));
    }
    if chars[17] != expected {
        return Err(CheckError::CheckChar {
            expected,
            found: chars[17],
        });
    }
    Ok(())
}

/// The birth date inside a valid citizen ID number.
pub fn citizen_id_birth_date(id: &str) -> Option<NaiveDate> {
    validate_citizen_id(id).ok()?;
    NaiveDate::parse_from_str(id.get(6..14)?, "%Y%m%d").ok()
}

fn uscc_value(c: char) -> Option<u32> {
    u8::try_from(c)
        .ok()
        .and_then(|b| USCC_CHARSET.iter().position(|&x| x == b))
        .map(|p| p as u32)
}

/// The check character of a unified social credit code from its first 17 characters.
pub fn credit_code_check_char(first17: &str) -> Result<char, CheckError> {
    let chars: Vec<char> = first17.chars().collect();
    if chars.len() != 17 {
        return Err(CheckError::Length(chars.len() + 1));
    }
    let mut sum = 0;
    for (position, (c, w)) in chars.iter().zip(USCC_WEIGHTS).enumerate() {
        let v = uscc_value(*c).ok_or(CheckError::Char {
            position,
            found: *c,
        })?;
        sum += v * w;
    }
    Ok(char::from(USCC_CHARSET[((31 - sum % 31) % 31) as usize]))
}

/// Validates a unified social credit code.
pub fn validate_credit_code(code: &str) -> Result<(), CheckError> {
    let chars = chars18(code)?;
    let first17: String = chars[..17].iter().collect();
    let expected = credit_code_check_char(&first17)?;
    if chars[17] != expected {
        return Err(CheckError::CheckChar {
            expected,
            found: chars[17],
        });
    }
    Ok(())
}

fn lookalike(c: char) -> Option<char> {
    LOOKALIKES.iter().find_map(|&(a, b)| {
        if c == a {
            Some(b)
        } else if c == b {
            Some(a)
        } else {
            None
        }
    })
}

/// Proposes the correction of an invalid number when exactly one is possible.
///
/// Characters that cannot appear where they are (e.g. `O` in an ID number) are replaced by
/// their look-alike; then, if the number is still invalid, every single further look-alike
/// swap is tried. The suggestion is returned only when exactly one candidate is valid.
fn suggest(
    s: &str,
    allowed: impl Fn(usize, char) -> bool,
    valid: impl Fn(&str) -> bool,
) -> Option<String> {
    if valid(s) {
        return None;
    }
    let mut chars: Vec<char> = s.trim().to_uppercase().chars().collect();
    if chars.len() != 18 {
        return None;
    }
    for (i, c) in chars.iter_mut().enumerate() {
        if !allowed(i, *c) {
            *c = lookalike(*c).filter(|&l| allowed(i, l))?;
        }
    }
    let forced: String = chars.iter().collect();
    if valid(&forced) {
        return Some(forced);
    }
    let mut found = Vec::new();
    for i in 0..18 {
        if let Some(l) = lookalike(chars[i]).filter(|&l| allowed(i, l)) {
            let mut candidate = chars.clone();
            candidate[i] = l;
            let candidate: String = candidate.into_iter().collect();
            if valid(&candidate) {
                found.push(candidate);
            }
        }
    }
    if found.len() == 1 { found.pop() } else { None }
}

/// Proposes the single look-alike correction that makes a citizen ID number valid.
pub fn suggest_citizen_id(id: &str) -> Option<String> {
    suggest(
        id,
        |i, c| c.is_ascii_digit() || (i == 17 && c == 'X'),
        |s| validate_citizen_id(s).is_ok(),
    )
}

/// Proposes the single look-alike correction that makes a credit code valid.
pub fn suggest_credit_code(code: &str) -> Option<String> {
    suggest(
        code,
        |_, c| uscc_value(c).is_some(),
        |s| validate_credit_code(s).is_ok(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 3] = [
        "321083197812162119",
        "150102198807303035",
        "33010219200403064X",
    ];
    const CODES: [&str; 3] = [
        "91310110666007217T",
        "91310115591693856A",
        "91110108700338416R",
    ];

    #[test]
    fn samples() {
        fn check(s: &str, expect: Result<(), CheckError>, f: fn(&str) -> Result<(), CheckError>) {
            assert_eq!(f(s), expect, "{s}");
        }
        for id in IDS {
            check(id, Ok(()), validate_citizen_id);
        }
        for code in CODES {
            check(code, Ok(()), validate_credit_code);
        }
        let cases: [(&str, Result<(), CheckError>); 5] = [
            (
                "91350203M0001QAY9B",
                Err(CheckError::CheckChar {
                    expected: '9',
                    found: 'B',
                }),
            ),
            ("9135020", Err(CheckError::Length(7))),
            (
                "91O10110666007217T",
                Err(CheckError::Char {
                    position: 2,
                    found: 'O',
                }),
            ),
            (
                "91310110666007217I",
                Err(CheckError::CheckChar {
                    expected: 'T',
                    found: 'I',
                }),
            ),
            (
                "9131011066600721IT",
                Err(CheckError::Char {
                    position: 16,
                    found: 'I',
                }),
            ),
        ];
        for (s, expect) in cases {
            check(s, expect, validate_credit_code);
        }
        let cases: [(&str, Result<(), CheckError>); 4] = [
            (
                "32108319781216211X",
                Err(CheckError::CheckChar {
                    expected: '9',
                    found: 'X',
                }),
            ),
            (
                "321083197813162116",
                Err(CheckError::BirthDate("19781316".into())),
            ),
            ("32108319781216211", Err(CheckError::Length(17))),
            (
                "3210831978121621x9",
                Err(CheckError::Char {
                    position: 16,
                    found: 'x',
                }),
            ),
        ];
        for (s, expect) in cases {
            check(s, expect, validate_citizen_id);
        }
        assert_eq!(citizen_id_check_char("33010219200403064"), Ok('X'));
        assert_eq!(credit_code_check_char("91310110666007217"), Ok('T'));
    }

    #[test]
    fn every_single_character_corruption_is_detected() {
        let digits = "0123456789X";
        for id in IDS {
            for i in 0..18 {
                for c in digits.chars() {
                    let mut s: Vec<char> = id.chars().collect();
                    if s[i] == c {
                        continue;
                    }
                    s[i] = c;
                    let s: String = s.into_iter().collect();
                    assert!(validate_citizen_id(&s).is_err(), "{s} accepted");
                }
            }
        }
        for code in CODES {
            for i in 0..18 {
                for &b in USCC_CHARSET {
                    let mut s = code.as_bytes().to_vec();
                    if s[i] == b {
                        continue;
                    }
                    s[i] = b;
                    let s = String::from_utf8(s).unwrap();
                    assert!(validate_credit_code(&s).is_err(), "{s} accepted");
                }
            }
        }
    }

    #[test]
    fn suggestions() {
        let cases = [
            ("32108319781216211Z", None), // Z → 2 is not valid either
            ("I50102198807303035", Some("150102198807303035")), // I → 1 forced
            ("15010219880730303S", Some("150102198807303035")), // S → 5 forced
            ("33010219200403O64X", Some("33010219200403064X")), // O → 0 forced
            ("321083197812162119", None), // already valid
            ("91310110666OO7217T", Some("91310110666007217T")), // O → 0 in a credit code
            ("9131011559169385GA", Some("91310115591693B5GA")), // the one valid 8 → B swap
            ("91310115591693856", None),  // too short
        ];
        for (input, expect) in cases {
            let got = if input.starts_with("91") {
                suggest_credit_code(input)
            } else {
                suggest_citizen_id(input)
            };
            assert_eq!(got.as_deref(), expect, "{input}");
        }
        // Credit codes: 8 ↔ B are both legal, so a single swap is searched.
        let swapped = "91310115591693B56A";
        assert_eq!(
            suggest_credit_code(swapped).as_deref(),
            Some("91310115591693856A")
        );
    }
}

//! The 256-byte text block of a resident ID card: UCS-2LE, space-padded fields.

use chrono::NaiveDate;

/// The 56 nationalities of GB 3304, by code 01–56.
pub const NATIONS: [&str; 56] = [
    "汉",
    "蒙古",
    "回",
    "藏",
    "维吾尔",
    "苗",
    "彝",
    "壮",
    "布依",
    "朝鲜",
    "满",
    "侗",
    "瑶",
    "白",
    "土家",
    "哈尼",
    "哈萨克",
    "傣",
    "黎",
    "傈僳",
    "佤",
    "畲",
    "高山",
    "拉祜",
    "水",
    "东乡",
    "纳西",
    "景颇",
    "柯尔克孜",
    "土",
    "达斡尔",
    "仫佬",
    "羌",
    "布朗",
    "撒拉",
    "毛南",
    "仡佬",
    "锡伯",
    "阿昌",
    "普米",
    "塔吉克",
    "怒",
    "乌孜别克",
    "俄罗斯",
    "鄂温克",
    "德昂",
    "保安",
    "裕固",
    "京",
    "塔塔尔",
    "独龙",
    "鄂伦春",
    "赫哲",
    "门巴",
    "珞巴",
    "基诺",
];

/// The nationality for a code (1–56).
pub fn nation_name(code: u8) -> Option<&'static str> {
    NATIONS.get(usize::from(code).checked_sub(1)?).copied()
}

/// Byte ranges of the fields.
const NAME: (usize, usize) = (0, 30);
const GENDER: (usize, usize) = (30, 32);
const NATION: (usize, usize) = (32, 36);
const BIRTH: (usize, usize) = (36, 52);
const ADDRESS: (usize, usize) = (52, 122);
const ID_NUMBER: (usize, usize) = (122, 158);
const ISSUER: (usize, usize) = (158, 188);
const VALID_FROM: (usize, usize) = (188, 204);
const VALID_TO: (usize, usize) = (204, 220);

/// Gender as coded on the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// `1`.
    Male,
    /// `2`.
    Female,
}

/// End of validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validity {
    /// Valid until this date.
    Until(NaiveDate),
    /// `长期`: does not expire.
    LongTerm,
}

/// The text fields of a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardText {
    /// Name.
    pub name: String,
    /// Gender.
    pub gender: Gender,
    /// Nationality code, 1–56.
    pub nation_code: u8,
    /// Date of birth.
    pub birth: NaiveDate,
    /// Address.
    pub address: String,
    /// Citizen ID number.
    pub id_number: String,
    /// Issuing authority.
    pub issuer: String,
    /// Start of validity.
    pub valid_from: NaiveDate,
    /// End of validity.
    pub valid_to: Validity,
}

/// Why a text block does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// Not 256 bytes.
    #[error("text block is {0} bytes, expected 256")]
    Length(usize),
    /// A field is not valid UCS-2.
    #[error("field {0} is not valid ucs-2")]
    Encoding(&'static str),
    /// A field has an impossible value.
    #[error("field {field} has invalid value {value:?}")]
    Value {
        /// Field name.
        field: &'static str,
        /// Its text.
        value: String,
    },
}

fn field(
    block: &[u8],
    (from, to): (usize, usize),
    name: &'static str,
) -> Result<String, TextError> {
    let units = block[from..to]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    let s: String = char::decode_utf16(units)
        .collect::<Result<_, _>>()
        .map_err(|_| TextError::Encoding(name))?;
    Ok(s.trim_end_matches([' ', '\0']).to_owned())
}

/// A `YYYYMMDD` date: eight digits (`%Y` alone would also take a signed year, `-3010101`).
fn date(s: &str, name: &'static str) -> Result<NaiveDate, TextError> {
    let bad = || TextError::Value {
        field: name,
        value: s.to_owned(),
    };
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    NaiveDate::parse_from_str(s, "%Y%m%d").map_err(|_| bad())
}

fn put(block: &mut [u8], (from, to): (usize, usize), value: &str) {
    let mut at = from;
    for unit in value.encode_utf16() {
        if at + 2 > to {
            break;
        }
        block[at..at + 2].copy_from_slice(&unit.to_le_bytes());
        at += 2;
    }
}

impl CardText {
    /// The nationality's name, if the code is one of the 56.
    pub fn nation(&self) -> Option<&'static str> {
        nation_name(self.nation_code)
    }

    /// Parses a 256-byte text block.
    pub fn parse(block: &[u8]) -> Result<CardText, TextError> {
        if block.len() != super::TEXT_LEN {
            return Err(TextError::Length(block.len()));
        }
        let bad = |field: &'static str, value: String| TextError::Value { field, value };
        let gender = match field(block, GENDER, "gender")?.as_str() {
            "1" => Gender::Male,
            "2" => Gender::Female,
            other => return Err(bad("gender", other.to_owned())),
        };
        let nation = field(block, NATION, "nation")?;
        let nation_code = nation
            .parse::<u8>()
            .ok()
            .filter(|c| nation_name(*c).is_some())
            .ok_or_else(|| bad("nation", nation.clone()))?;
        let valid_to = match field(block, VALID_TO, "valid_to")?.as_str() {
            "长期" => Validity::LongTerm,
            s => Validity::Until(date(s, "valid_to")?),
        };
        Ok(CardText {
            name: field(block, NAME, "name")?,
            gender,
            nation_code,
            birth: date(&field(block, BIRTH, "birth")?, "birth")?,
            address: field(block, ADDRESS, "address")?,
            id_number: field(block, ID_NUMBER, "id_number")?,
            issuer: field(block, ISSUER, "issuer")?,
            valid_from: date(&field(block, VALID_FROM, "valid_from")?, "valid_from")?,
            valid_to,
        })
    }

    /// Lays the fields out as a card does (too-long values are cut at their field).
    pub fn encode(&self) -> [u8; super::TEXT_LEN] {
        let mut block = [0u8; super::TEXT_LEN];
        for pair in block.chunks_exact_mut(2) {
            pair.copy_from_slice(&[0x20, 0x00]);
        }
        let gender = match self.gender {
            Gender::Male => "1",
            Gender::Female => "2",
        };
        let ymd = |d: NaiveDate| d.format("%Y%m%d").to_string();
        put(&mut block, NAME, &self.name);
        put(&mut block, GENDER, gender);
        put(&mut block, NATION, &format!("{:02}", self.nation_code));
        put(&mut block, BIRTH, &ymd(self.birth));
        put(&mut block, ADDRESS, &self.address);
        put(&mut block, ID_NUMBER, &self.id_number);
        put(&mut block, ISSUER, &self.issuer);
        put(&mut block, VALID_FROM, &ymd(self.valid_from));
        let to = match self.valid_to {
            Validity::Until(d) => ymd(d),
            Validity::LongTerm => "长期".to_owned(),
        };
        put(&mut block, VALID_TO, &to);
        block
    }

    /// A sample card (valid ID number) for demos and tests.
    pub fn sample() -> CardText {
        CardText {
            name: "张三".into(),
            gender: Gender::Male,
            nation_code: 1,
            birth: NaiveDate::from_ymd_opt(1978, 12, 16).unwrap_or_default(),
            address: "江苏省兴化市昭阳镇英武路1号".into(),
            id_number: "321083197812162119".into(),
            issuer: "兴化市公安局".into(),
            valid_from: NaiveDate::from_ymd_opt(2015, 3, 1).unwrap_or_default(),
            valid_to: Validity::Until(NaiveDate::from_ymd_opt(2035, 3, 1).unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_eight_digits() {
        let with = |field: (usize, usize), value: &str| {
            let mut block = CardText::sample().encode();
            for pair in block[field.0..field.1].chunks_exact_mut(2) {
                pair.copy_from_slice(&[0x20, 0x00]);
            }
            put(&mut block, field, value);
            CardText::parse(&block)
        };
        assert_eq!(with(BIRTH, "19781216"), Ok(CardText::sample()));
        // Signed years parse with `%Y` but are no card's, and do not survive an encode.
        for (field, name, value) in [
            (VALID_FROM, "valid_from", "-3010201"),
            (VALID_TO, "valid_to", "-0030101"),
            (BIRTH, "birth", "+1978121"),
            (BIRTH, "birth", "1978126"),
        ] {
            assert_eq!(
                with(field, value),
                Err(TextError::Value {
                    field: name,
                    value: value.to_owned()
                }),
                "{value}"
            );
        }
    }
}

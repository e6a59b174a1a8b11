use super::*;
use branchd_drivers::checks;

/// A recognised line at (x, y) of size w×h, tilted by `tilt` px over its width.
fn line(text: &str, x: i32, y: i32, w: i32, h: i32) -> Line {
    tilted(text, x, y, w, h, 0)
}

fn tilted(text: &str, x: i32, y: i32, w: i32, h: i32, tilt: i32) -> Line {
    Line {
        text: text.into(),
        confidence: 0.95,
        quad: [[x, y], [x + w, y + tilt], [x + w, y + h + tilt], [x, y + h]],
        readings: Vec::new(),
    }
}

fn value<'a>(d: &'a Document, key: &str) -> Option<&'a str> {
    d.fields.get(key).map(|f| f.value.as_str())
}

fn id_front_lines() -> Vec<Line> {
    vec![
        line("姓名", 100, 100, 60, 24),
        line("许英", 180, 98, 60, 28),
        line("性别", 100, 150, 60, 24),
        line("女", 180, 150, 24, 24),
        line("民族", 260, 150, 60, 24),
        line("汉", 340, 150, 24, 24),
        line("出生", 100, 200, 60, 24),
        line("1981年1月1日", 180, 200, 200, 24),
        line("住址", 100, 250, 60, 24),
        line("浙江省宁波市鄞州区北", 180, 250, 300, 24),
        line("京街225号绿城新村10幢", 180, 290, 300, 24),
        line("1单元2603室", 180, 330, 160, 24),
        line("公民身份号码", 100, 420, 150, 24),
        line("33021219810101900X", 280, 418, 380, 30),
    ]
}

#[test]
fn id_front_fields_come_from_labels_and_the_address_continues_below() {
    let d = extract(&id_front_lines(), Requested::Auto).unwrap();
    assert_eq!(d.kind, DocKind::IdCard);
    assert_eq!(d.side, Some(Side::Front));
    assert_eq!(value(&d, "name"), Some("许英"));
    assert_eq!(value(&d, "gender"), Some("女"));
    assert_eq!(value(&d, "nation"), Some("汉"));
    assert_eq!(value(&d, "birth_date"), Some("1981-01-01"));
    assert_eq!(
        value(&d, "address"),
        Some("浙江省宁波市鄞州区北京街225号绿城新村10幢1单元2603室")
    );
    let id = &d.fields["id_number"];
    assert_eq!(id.value, "33021219810101900X");
    assert_eq!(id.valid, Some(true));
    // cross-checked against the number
    assert_eq!(d.fields["gender"].valid, Some(true));
    assert_eq!(d.fields["birth_date"].valid, Some(true));
}

#[test]
fn labels_read_together_with_their_values_and_a_tilted_photo_still_give_the_fields() {
    let lines = vec![
        tilted("姓名张三", 100, 100, 150, 24, 8),
        tilted("性别男民族蒙古", 100, 150, 260, 24, 14),
        tilted("出生1978年12月16日", 100, 200, 300, 24, 16),
        tilted("住址江苏省高邮市", 100, 250, 300, 24, 16),
        tilted("公民身份号码321083197812162119", 100, 400, 600, 28, 32),
    ];
    let d = extract(&lines, Requested::IdCard).unwrap();
    assert_eq!(value(&d, "name"), Some("张三"));
    assert_eq!(value(&d, "gender"), Some("男"));
    assert_eq!(value(&d, "nation"), Some("蒙古"));
    assert_eq!(value(&d, "birth_date"), Some("1978-12-16"));
    assert_eq!(value(&d, "address"), Some("江苏省高邮市"));
    assert_eq!(value(&d, "id_number"), Some("321083197812162119"));
}

#[test]
fn letters_misread_for_digits_in_the_id_number_are_mapped_back() {
    let mut lines = id_front_lines();
    lines[13] = line("33O2I2I98IOlOI9OOx", 280, 418, 380, 30);
    let d = extract(&lines, Requested::IdCard).unwrap();
    assert_eq!(value(&d, "id_number"), Some("33021219810101900X"));
    assert_eq!(d.fields["id_number"].valid, Some(true));
}

#[test]
fn an_id_number_with_a_wrong_digit_is_invalid_and_gender_is_not_cross_checked() {
    let mut lines = id_front_lines();
    lines[13] = line("33021219810101908X", 280, 418, 380, 30);
    let d = extract(&lines, Requested::IdCard).unwrap();
    assert_eq!(d.fields["id_number"].valid, Some(false));
    assert_eq!(d.fields["gender"].valid, None);
}

#[test]
fn a_gender_that_contradicts_the_id_number_is_flagged() {
    let mut lines = id_front_lines();
    lines[3] = line("男", 180, 150, 24, 24);
    let d = extract(&lines, Requested::IdCard).unwrap();
    assert_eq!(d.fields["gender"].valid, Some(false));
}

#[test]
fn a_field_not_found_is_absent() {
    let lines = vec![
        line("姓名", 100, 100, 60, 24),
        line("许英", 180, 98, 60, 28),
    ];
    let d = extract(&lines, Requested::IdCard).unwrap();
    assert_eq!(value(&d, "name"), Some("许英"));
    assert!(!d.fields.contains_key("id_number"));
    assert!(!d.fields.contains_key("address"));
}

#[test]
fn id_back_gives_authority_and_validity_dates() {
    let lines = vec![
        line("中华人民共和国", 300, 60, 400, 40),
        line("居民身份证", 300, 120, 400, 50),
        line("签发机关", 150, 400, 100, 24),
        line("宁波市公安局鄞州分局", 280, 400, 300, 24),
        line("有效期限", 150, 460, 100, 24),
        line("2022.06.02-2042.06.02", 280, 460, 300, 24),
    ];
    let d = extract(&lines, Requested::Auto).unwrap();
    assert_eq!(d.side, Some(Side::Back));
    assert_eq!(value(&d, "issuing_authority"), Some("宁波市公安局鄞州分局"));
    assert_eq!(value(&d, "valid_from"), Some("2022-06-02"));
    assert_eq!(value(&d, "valid_to"), Some("2042-06-02"));
    let long = vec![
        line("签发机关", 150, 400, 100, 24),
        line("杭州市公安局西湖分局", 280, 400, 300, 24),
        line("有效期限2015.03.12-长期", 150, 460, 400, 24),
    ];
    let d = extract(&long, Requested::IdCard).unwrap();
    assert_eq!(value(&d, "valid_from"), Some("2015-03-12"));
    assert_eq!(value(&d, "valid_to"), Some("长期"));
}

fn licence_lines() -> Vec<Line> {
    vec![
        line("统一社会信用代码", 60, 60, 200, 20),
        line("91500103767504036C", 60, 90, 300, 22),
        line("营业执照", 400, 120, 300, 70),
        line("名", 60, 300, 20, 22),
        line("称", 150, 300, 20, 22),
        line("重庆航新贸易有限公司", 200, 300, 250, 22),
        line("注册资本", 560, 310, 110, 22),
        line("人民币贰佰万元整", 700, 310, 200, 22),
        line("类", 60, 345, 20, 22),
        line("型", 150, 345, 20, 22),
        line("有限责任公司(自然人独资)", 200, 345, 280, 22),
        line("成立日期", 560, 350, 110, 22),
        line("2005年01月24日", 700, 350, 160, 22),
        line("法定代表人", 60, 390, 120, 22),
        line("苏欣", 200, 390, 60, 22),
        line("营业期限", 560, 390, 110, 22),
        line("2005年01月24日至2055年01月23日", 700, 390, 280, 22),
        line("经营范围", 60, 435, 120, 22),
        line("一般项目：服装服饰零售；五金产品批发；", 200, 435, 300, 22),
        line("住", 560, 430, 20, 22),
        line("所", 650, 430, 20, 22),
        line("重庆市渝中区胜利北路822号绿城小", 700, 430, 280, 22),
        line("货物进出口；办公用品销售。", 200, 470, 300, 22),
        line("区26幢3单元204室", 700, 468, 200, 22),
        line("登记机关", 560, 560, 110, 22),
        line(
            "国家企业信用信息公示系统网址：http://www.gsxt.gov.cn",
            60,
            700,
            500,
            18,
        ),
    ]
}

#[test]
fn licence_two_columns_are_read_with_their_continuation_lines() {
    let d = extract(&licence_lines(), Requested::Auto).unwrap();
    assert_eq!(d.kind, DocKind::Licence);
    assert_eq!(value(&d, "name"), Some("重庆航新贸易有限公司"));
    assert_eq!(value(&d, "type"), Some("有限责任公司（自然人独资）"));
    assert_eq!(value(&d, "legal_person"), Some("苏欣"));
    assert_eq!(value(&d, "registered_capital"), Some("人民币贰佰万元整"));
    assert_eq!(value(&d, "established"), Some("2005-01-24"));
    assert_eq!(value(&d, "term"), Some("2005-01-24至2055-01-23"));
    assert_eq!(
        value(&d, "address"),
        Some("重庆市渝中区胜利北路822号绿城小区26幢3单元204室")
    );
    assert_eq!(
        value(&d, "scope"),
        Some("一般项目：服装服饰零售；五金产品批发；货物进出口；办公用品销售。")
    );
    let code = &d.fields["credit_code"];
    assert_eq!(code.value, "91500103767504036C");
    assert_eq!(code.valid, Some(true));
}

#[test]
fn a_credit_code_with_a_letter_o_for_zero_is_read_as_zero() {
    let mut lines = licence_lines();
    lines[1] = line("915OO1O3767504036C", 60, 90, 300, 22);
    let d = extract(&lines, Requested::Licence).unwrap();
    assert_eq!(value(&d, "credit_code"), Some("91500103767504036C"));
    assert_eq!(d.fields["credit_code"].valid, Some(true));
}

#[test]
fn an_ambiguous_credit_code_character_gets_a_suggestion() {
    // 8 misread as B is a valid credit-code letter: invalid, with the one correction
    let mut lines = licence_lines();
    lines[1] = line("91310115591693B56A", 60, 90, 300, 22);
    let d = extract(&lines, Requested::Licence).unwrap();
    let code = &d.fields["credit_code"];
    assert_eq!(code.value, "91310115591693B56A");
    assert_eq!(code.valid, Some(false));
    assert_eq!(code.suggestion.as_deref(), Some("91310115591693856A"));
}

#[test]
fn a_registered_capital_in_arabic_digits_keeps_its_digits() {
    for (printed, want) in [
        ("3000万元人民币", "3000万元人民币"),
        ("人民币500万元", "人民币500万元"),
        ("：100.000000万人民币", "100.000000万人民币"),
        ("５０万元", "50万元"),
    ] {
        let mut lines = licence_lines();
        lines[7] = line(printed, 700, 310, 200, 22);
        let d = extract(&lines, Requested::Licence).unwrap();
        assert_eq!(value(&d, "registered_capital"), Some(want), "{printed}");
    }
}

#[test]
fn a_long_term_licence_has_term_long() {
    let mut lines = licence_lines();
    lines[16] = line("长期", 700, 390, 60, 22);
    let d = extract(&lines, Requested::Licence).unwrap();
    assert_eq!(value(&d, "term"), Some("长期"));
}

#[test]
fn the_wrong_kind_is_refused() {
    let e = extract(&licence_lines(), Requested::IdCard).unwrap_err();
    assert!(e.0.contains("licence"), "{e}");
    let e = extract(&id_front_lines(), Requested::Licence).unwrap_err();
    assert!(e.0.contains("ID card"), "{e}");
}

#[test]
fn dates_are_normalised() {
    assert_eq!(parse_date("1981年1月1日").as_deref(), Some("1981-01-01"));
    assert_eq!(parse_date("2005年01月24日").as_deref(), Some("2005-01-24"));
    assert_eq!(parse_date("2022.06.02").as_deref(), Some("2022-06-02"));
    assert_eq!(parse_date("20220602").as_deref(), Some("2022-06-02"));
    assert_eq!(parse_date("2022.02.30"), None);
    assert_eq!(parse_date("no date"), None);
}

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
fn every_single_character_corruption_of_a_valid_id_number_is_caught() {
    for id in IDS {
        assert!(checks::validate_citizen_id(id).is_ok(), "{id}");
        for pos in 0..18 {
            for c in "0123456789X".chars() {
                let mut v: Vec<char> = id.chars().collect();
                if v[pos] == c {
                    continue;
                }
                v[pos] = c;
                let bad: String = v.into_iter().collect();
                assert!(checks::validate_citizen_id(&bad).is_err(), "{bad}");
            }
        }
    }
}

#[test]
fn every_single_character_corruption_of_a_valid_credit_code_is_caught() {
    for code in CODES {
        assert!(checks::validate_credit_code(code).is_ok(), "{code}");
        for pos in 0..18 {
            for c in "0123456789ABCDEFGHJKLMNPQRTUWXY".chars() {
                let mut v: Vec<char> = code.chars().collect();
                if v[pos] == c {
                    continue;
                }
                v[pos] = c;
                let bad: String = v.into_iter().collect();
                assert!(checks::validate_credit_code(&bad).is_err(), "{bad}");
            }
        }
    }
    assert!(checks::validate_credit_code("91350203M0001QAY9B").is_err());
}

#[test]
fn a_look_alike_corruption_gets_the_original_as_suggestion() {
    // a 1 read as I in an ID number is mapped back before the check
    let lines = vec![line("公民身份号码32I083197812162119", 100, 400, 600, 28)];
    let d = extract(&lines, Requested::IdCard).unwrap();
    assert_eq!(value(&d, "id_number"), Some("321083197812162119"));
    // B for 8 in a credit code: a valid letter there, so only a suggestion can fix it
    assert_eq!(
        checks::suggest_credit_code("9111010B700338416R").as_deref(),
        Some("91110108700338416R")
    );
}

#[test]
fn scope_separators_and_fixed_sentences_are_repaired() {
    assert_eq!(
        fix_scope(
            "一般项目：水果种植：化肥销售。（除依法频经批准的项目外，凭营业执照依法自主开展经营活动）"
        ),
        "一般项目：水果种植；化肥销售。（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）"
    );
    assert_eq!(fix_scope("许可项目：食品经营。"), "许可项目：食品经营。");
    assert_eq!(fix_address("广西壮族白治区南宁市"), "广西壮族自治区南宁市");
    // a character lost, the closing bracket lost at the end, the full stop read as a dot
    assert_eq!(
        fix_scope("一般项目：装卸搬运·（除依法须经批准的项目外，凭营业执照依法开展经营活动"),
        "一般项目：装卸搬运。（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）"
    );
    // the full stop before the sentence lost
    assert_eq!(
        fix_scope("销售（不含危险化学品）（依法须经批准的项目，经相关部门批准后方可开展经营活动）"),
        "销售（不含危险化学品）。（依法须经批准的项目，经相关部门批准后方可开展经营活动）"
    );
}

#[test]
fn a_scopes_headings_read_with_a_character_or_two_wrong_are_restored() {
    let general = "（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）";
    assert_eq!(
        fix_scope("般项目：广告发布。"),
        "一般项目：广告发布。",
        "the first character lost"
    );
    assert_eq!(fix_scope("一教项目，蔬菜种植。"), "一般项目：蔬菜种植。");
    assert_eq!(
        fix_scope(&format!("一般项目：化肥销售。{general}许可目；食品经营。")),
        format!("一般项目：化肥销售。{general}许可项目：食品经营。"),
        "the permitted part's heading, after the general part's sentence"
    );
    // as printed before 2021, and a run as near one heading as the other: as read
    assert_eq!(
        fix_scope("一般经营项目：广告发布。"),
        "一般经营项目：广告发布。"
    );
    assert_eq!(fix_scope("规项目：广告发布。"), "规项目：广告发布。");
    assert_eq!(
        fix_scope("食品销售、企业管理咨询。"),
        "食品销售、企业管理咨询。"
    );
}

#[test]
fn the_scopes_first_line_taken_by_the_field_above_is_given_back() {
    let found = |key, text: &str| Found {
        key,
        text: text.into(),
        conf: 1.0,
        label_x: 0.0,
        value_x: None,
        value_x_exact: false,
        yc: 0.0,
    };
    let mut fields = vec![
        found(
            "address",
            "福建省福州市鼓楼区花园西路568号一般项目：技术开发；",
        ),
        found("scope", "技术服务。"),
    ];
    scope_heading_to_scope(&mut fields);
    assert_eq!(fields[0].text, "福建省福州市鼓楼区花园西路568号");
    assert_eq!(fields[1].text, "一般项目：技术开发；技术服务。");
    // a scope that begins with its heading keeps what it has, and so does the field above
    let mut fields = vec![
        found("name", "一般项目咨询有限公司"),
        found("address", "北京市一般项目路1号"),
        found("scope", "一般项目：技术服务。"),
    ];
    scope_heading_to_scope(&mut fields);
    assert_eq!(fields[1].text, "北京市一般项目路1号");
    assert_eq!(fields[2].text, "一般项目：技术服务。");
}

#[test]
fn a_term_broken_after_its_to_is_one_line_again() {
    let lines =
        |v: &[&str]| -> Vec<(String, f32)> { v.iter().map(|t| (t.to_string(), 0.9)).collect() };
    let joined = join_broken_periods(lines(&["2000年01月09日至", "2030年01月08日", "★"]));
    assert_eq!(joined, lines(&["2000年01月09日至2030年01月08日", "★"]));
    assert_eq!(
        join_broken_periods(lines(&["2000年01月09日至", "长期"])),
        lines(&["2000年01月09日至长期"])
    );
    // what does not continue a period stays apart
    let apart = lines(&["2000年01月09日至", "国家企业信用信息公示系统"]);
    assert_eq!(join_broken_periods(apart.clone()), apart);
}

#[test]
fn a_company_type_is_the_registered_type_it_was_read_as() {
    // two characters misread, one misread, the closing parenthesis lost
    assert_eq!(
        fix_type("有限责任公司（自然人税货）"),
        "有限责任公司（自然人独资）"
    );
    assert_eq!(
        fix_type("有限责任公司（自然人投资或控服）"),
        "有限责任公司（自然人投资或控股）"
    );
    assert_eq!(
        fix_type("有限责任公司（非自然人投资或控股的法人独资"),
        "有限责任公司（非自然人投资或控股的法人独资）"
    );
    // cut short: completed only where one type starts so
    assert_eq!(
        fix_type("有限责任公司（非自然人投资或控股的"),
        "有限责任公司（非自然人投资或控股的法人独资）"
    );
    assert_eq!(
        fix_type("有限责任公司（自然人投"),
        "有限责任公司（自然人投",
        "two types start so"
    );
    // registered types, and what is too far from any, stay as read
    assert_eq!(fix_type("个体工商户"), "个体工商户");
    assert_eq!(
        fix_type("有限责任公司（外商投资企业法人独资）"),
        "有限责任公司（外商投资企业法人独资）"
    );
    assert_eq!(fix_type("分公司"), "分公司");
}

#[test]
fn a_stray_digit_before_the_year_is_dropped() {
    assert_eq!(parse_date("22005年02月25日").as_deref(), Some("2005-02-25"));
}

/// A printed table: labels centred in their cells beside values of one or more lines,
/// rows ruled apart (a wider gap than the value's line pitch).
fn table_lines() -> Vec<Line> {
    vec![
        line("营业执照", 300, 40, 300, 60),
        line("名称", 100, 140, 50, 22),
        line("苏州成德文化传媒有限公司", 220, 140, 260, 22),
        // two lines centred on the label
        line("有限责任公司（自然人投", 220, 180, 240, 22),
        line("类型", 100, 195, 50, 22),
        line("资或控股）", 220, 210, 110, 22),
        line("住所", 100, 260, 50, 22),
        line("江苏省苏州市姑苏区和平西路223号", 220, 260, 340, 22),
        // three lines above, on and below the label
        line(
            "一般项目：会议及展览服务；市场营销策划。（除依",
            220,
            310,
            480,
            22,
        ),
        line("经营范围", 100, 340, 90, 22),
        line(
            "法须经批准的项目外，凭营业执照依法自主开展经营",
            220,
            340,
            480,
            22,
        ),
        line("活动）", 220, 370, 60, 22),
        // the seal's lettering and the footer beside and below the values
        line("区市场监", 610, 375, 90, 22),
        line(
            "国家企业信用信息公示系统网址：http://www.gsxt.gov.cn",
            220,
            450,
            480,
            18,
        ),
    ]
}

#[test]
fn a_table_with_labels_centred_beside_their_values_is_read_in_order() {
    let d = extract(&table_lines(), Requested::Licence).unwrap();
    assert_eq!(value(&d, "name"), Some("苏州成德文化传媒有限公司"));
    assert_eq!(value(&d, "type"), Some("有限责任公司（自然人投资或控股）"));
    assert_eq!(
        value(&d, "address"),
        Some("江苏省苏州市姑苏区和平西路223号")
    );
    assert_eq!(
        value(&d, "scope"),
        Some(
            "一般项目：会议及展览服务；市场营销策划。（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）"
        )
    );
}

#[test]
fn a_value_does_not_take_the_title_above_it_or_a_line_that_belongs_to_no_label() {
    let mut lines = licence_lines();
    // the title just above the first value, in its column
    lines[2] = line("营业执照", 200, 240, 300, 60);
    // a stray line under the name's column, after a wide gap
    lines.push(line("备案、许可、监管信息", 200, 620, 200, 22));
    let d = extract(&lines, Requested::Licence).unwrap();
    assert_eq!(value(&d, "name"), Some("重庆航新贸易有限公司"));
    assert_eq!(
        value(&d, "scope"),
        Some("一般项目：服装服饰零售；五金产品批发；货物进出口；办公用品销售。")
    );
}

#[test]
fn a_spaced_label_with_one_character_lost_still_opens_its_field() {
    let mut lines = licence_lines();
    // 名 alone (称 not read); 住 lost, 所 read into the address
    lines.remove(4);
    let at = lines.iter().position(|l| l.text == "住").unwrap();
    lines.remove(at);
    let at = lines.iter().position(|l| l.text == "所").unwrap();
    lines.remove(at);
    lines[at] = line("所重庆市渝中区胜利北路822号绿城小", 650, 430, 330, 22);
    let d = extract(&lines, Requested::Licence).unwrap();
    assert_eq!(value(&d, "name"), Some("重庆航新贸易有限公司"));
    assert_eq!(
        value(&d, "address"),
        Some("重庆市渝中区胜利北路822号绿城小区26幢3单元204室")
    );
}

/// The recogniser's output for a line of letters and digits: per character one step where
/// it scores 0.96 (or, where `unsure` says so, splits with a second character), then a
/// blank step; the rest of each step's probability spread evenly.
fn ctc_matrix(dict: &[char], text: &str, unsure: &[(usize, f32, char, f32)]) -> Vec<f32> {
    let classes = dict.len() + 2;
    let class = |c: char| 1 + dict.iter().position(|&d| d == c).unwrap();
    let step = |picks: &[(usize, f32)]| {
        let rest = 1.0 - picks.iter().map(|p| p.1).sum::<f32>();
        let mut v = vec![rest / (classes - picks.len()) as f32; classes];
        for &(k, p) in picks {
            v[k] = p;
        }
        v
    };
    let mut probs = Vec::new();
    for (i, c) in text.chars().enumerate() {
        let picks = match unsure.iter().find(|u| u.0 == i) {
            Some(&(_, p, other, q)) => vec![(class(c), p), (class(other), q)],
            None => vec![(class(c), 0.96)],
        };
        probs.extend(step(&picks));
        probs.extend(step(&[(0, 0.97)]));
    }
    probs
}

fn code_line(text: &str, unsure: &[(usize, f32, char, f32)]) -> Line {
    let dict: Vec<char> = ('0'..='9').chain('A'..='Z').collect();
    let meta: String = dict.iter().map(|c| format!("{c}\n")).collect();
    let d = crate::ocr::rec::Dictionary::from_metadata(&meta);
    let probs = ctc_matrix(&dict, text, unsure);
    let decoded = d.decode_readings(&probs, d.classes(), crate::ocr::rec::READINGS);
    Line {
        text: decoded.text,
        confidence: decoded.confidence,
        quad: [[60, 90], [360, 90], [360, 112], [60, 112]],
        readings: decoded.readings,
    }
}

#[test]
fn a_credit_code_that_fails_its_check_is_repaired_from_the_second_reading() {
    let truth = format!(
        "9135020305Q01A4Y3{}",
        checks::credit_code_check_char("9135020305Q01A4Y3").unwrap()
    );
    let mut read: Vec<char> = truth.chars().collect();
    read[10] = '0';
    let read: String = read.into_iter().collect();
    // greedy decoding reads 0 where the recogniser also gave Q a fair chance
    let line = code_line(&read, &[(10, 0.55, 'Q', 0.4)]);
    assert_eq!(line.text, read);
    assert!(checks::validate_credit_code(&line.text).is_err());
    let mut lines = licence_lines();
    lines[1] = line;
    let d = extract(&lines, Requested::Licence).unwrap();
    let code = &d.fields["credit_code"];
    assert_eq!(code.value, truth);
    assert_eq!(code.valid, Some(true));
    assert_eq!(code.suggestion, None);
    // the repaired character's probability shows in the confidence
    assert!(code.confidence <= 0.4 + 1e-3, "{code:?}");
}

#[test]
fn an_ambiguous_credit_code_is_kept_as_read_and_marked_invalid() {
    let truth = format!(
        "9135020305Q01A4Y3{}",
        checks::credit_code_check_char("9135020305Q01A4Y3").unwrap()
    );
    let mut read: Vec<char> = truth.chars().collect();
    read[10] = '0';
    let read: String = read.into_iter().collect();
    // the replacement at position 4 that also passes, as likely as Q at position 10
    let other = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        .chars()
        .find(|&c| {
            let mut v: Vec<char> = read.chars().collect();
            v[4] = c;
            c != read.chars().nth(4).unwrap()
                && checks::validate_credit_code(&v.into_iter().collect::<String>()).is_ok()
        })
        .unwrap();
    let line = code_line(&read, &[(10, 0.55, 'Q', 0.4), (4, 0.55, other, 0.4)]);
    let mut lines = licence_lines();
    lines[1] = line;
    let d = extract(&lines, Requested::Licence).unwrap();
    let code = &d.fields["credit_code"];
    assert_eq!(code.value, read);
    assert_eq!(code.valid, Some(false));
    assert_eq!(code.suggestion, checks::suggest_credit_code(&read));
}

#[test]
fn a_value_whose_label_was_not_read_is_known_by_its_words() {
    // 名称 and 类型 not read at all, 注册资本 misread
    let lines: Vec<Line> = licence_lines()
        .into_iter()
        .filter(|l| !["名", "称", "类", "型"].contains(&l.text.as_str()))
        .map(|l| match l.text.as_str() {
            "注册资本" => line("注管本", 560, 310, 110, 22),
            _ => l,
        })
        .collect();
    let d = extract(&lines, Requested::Licence).unwrap();
    assert_eq!(value(&d, "name"), Some("重庆航新贸易有限公司"));
    assert_eq!(value(&d, "type"), Some("有限责任公司（自然人独资）"));
    assert_eq!(value(&d, "registered_capital"), Some("人民币贰佰万元整"));
    // a four-character label with one character lost
    let mut lost = lines.clone();
    let at = lost.iter().position(|l| l.text == "成立日期").unwrap();
    lost[at] = line("成日期", 560, 350, 110, 22);
    let d = extract(&lost, Requested::Licence).unwrap();
    assert_eq!(value(&d, "established"), Some("2005-01-24"));
    // what could be either of two fields is not guessed
    let mut lines = lines;
    lines.push(line("重庆远航贸易有限公司", 60, 650, 250, 22));
    let d = extract(&lines, Requested::Licence).unwrap();
    assert_eq!(value(&d, "name"), None);
}

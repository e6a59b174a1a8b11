//! Reading the daemon's sources, for the tests that check rules about the code itself
//! (`architecture`, `events_doc`): its files, and their code without test code.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its test code and without comment lines.
pub fn non_test_code(file: &Path) -> String {
    if file.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    without_tests(&std::fs::read_to_string(file).unwrap())
}

/// A file's text without the items marked `#[cfg(test)]` (a `mod tests;` declaration, a
/// `mod tests { … }` block wherever it is) and without comment lines.
pub fn without_tests(text: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut code = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(MARK) {
        code.push_str(&rest[..i]);
        let item = &rest[i + MARK.len()..];
        rest = &item[item_end(item)..];
    }
    code.push_str(rest);
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where the item at the start of `code` ends: after its `;`, or after the `}` that closes
/// its first `{`. Comments, string, raw string and char literals are skipped over.
fn item_end(code: &str) -> usize {
    let b = code.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        let ident_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = code[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = code[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                continue;
            }
            b'r' if !ident_before || (i > 1 && b[i - 1] == b'b') => {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) == Some(&b'"') {
                    let close = format!("\"{}", "#".repeat(hashes));
                    let from = i + 2 + hashes;
                    i = code[from..]
                        .find(&close)
                        .map_or(b.len(), |n| from + n + close.len());
                    continue;
                }
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' => {
                // a char literal ('x', '\n', '名'); a lifetime has no closing quote
                let mut chars = code[i + 1..].char_indices();
                match chars.next() {
                    Some((_, '\\')) => {
                        i = code[i + 3..].find('\'').map_or(b.len(), |n| i + 3 + n);
                    }
                    Some((_, c)) if code[i + 1 + c.len_utf8()..].starts_with('\'') => {
                        i += c.len_utf8() + 1;
                    }
                    _ => {}
                }
            }
            b';' if depth == 0 => return i + 1,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

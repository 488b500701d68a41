//! Writing YAML in the shape of kustomize's output (sorted keys, block
//! style, sequences not indented under their key), quoting every string
//! that any YAML 1.1 or 1.2 reader could take for something else.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::number::number_text;

/// Writes objects as a multi-document YAML stream separated by `---`.
pub(crate) fn write_documents(objects: &[Value]) -> String {
    let mut out = String::with_capacity(objects.len() * 512);
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        write_document(object, &mut out);
    }
    out
}

/// Writes one value as a YAML document (no separator).
pub(crate) fn write_document(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => write_map(map, 0, false, out),
        Value::Array(items) if !items.is_empty() => write_seq(items, 0, false, out),
        other => {
            write_inline(other, 0, out);
            out.push('\n');
        }
    }
}

fn indent(out: &mut String, n: usize) {
    const SPACES: &str = "                                                                ";
    let mut n = n;
    while n > SPACES.len() {
        out.push_str(SPACES);
        n -= SPACES.len();
    }
    out.push_str(&SPACES[..n]);
}

fn write_map(map: &Map<String, Value>, level: usize, first_inline: bool, out: &mut String) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 || !first_inline {
            indent(out, level);
        }
        write_string(key, level, false, out);
        out.push(':');
        match value {
            Value::Object(child) if !child.is_empty() => {
                out.push('\n');
                write_map(child, level + 2, false, out);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                write_seq(items, level, false, out);
            }
            other => {
                out.push(' ');
                write_inline(other, level + 2, out);
                out.push('\n');
            }
        }
    }
}

fn write_seq(items: &[Value], level: usize, first_inline: bool, out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !first_inline {
            indent(out, level);
        }
        out.push_str("- ");
        match item {
            Value::Object(child) if !child.is_empty() => write_map(child, level + 2, true, out),
            Value::Array(child) if !child.is_empty() => write_seq(child, level + 2, true, out),
            other => {
                write_inline(other, level + 2, out);
                out.push('\n');
            }
        }
    }
}

/// Writes a scalar or an empty collection on the current line. A multi-line
/// string becomes a literal block indented at `block_indent`.
fn write_inline(value: &Value, block_indent: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number_text(n)),
        Value::String(s) => write_string(s, block_indent, true, out),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// yaml.v3's preferred line width: a plain or quoted value breaks at a
/// single space once its line is longer than this.
const BEST_WIDTH: usize = 80;

/// The column (in characters) `out` ends at.
fn column(out: &str) -> usize {
    let line = match out.rfind('\n') {
        Some(i) => &out[i + 1..],
        None => out,
    };
    if line.is_ascii() {
        line.len()
    } else {
        line.chars().count()
    }
}

/// Writes a string. `allow_block` is false for keys, which are never
/// broken or written as blocks; values are, at `block_indent`.
fn write_string(s: &str, block_indent: usize, allow_block: bool, out: &mut String) {
    // a value that cannot reach past the line width needs no folding
    let breaks = allow_block && s.contains(' ') && {
        // quotes and escapes only lengthen the line
        let longest = s.len()
            + 2
            + s.matches(['\'', '"', '\\']).count()
            + 3 * s.matches(|c: char| c.is_control()).count();
        column(out) + longest > BEST_WIDTH
    };
    let breaks_at = |out: &String| breaks.then(|| column(out));
    if allow_block && literal_allowed(s) {
        write_literal(s, block_indent, out);
    } else if could_be_non_string(s) {
        let col = breaks_at(out);
        write_double_quoted(s, col, block_indent, out);
    } else if plain_allowed(s) {
        match breaks_at(out) {
            None => out.push_str(s),
            Some(col) => write_folded(s, col, block_indent, out, false),
        }
    } else if s.chars().all(|c| printable(c) && c != '\n' && c != '\t') {
        match breaks_at(out) {
            None => {
                out.push('\'');
                for c in s.chars() {
                    if c == '\'' {
                        out.push('\'');
                    }
                    out.push(c);
                }
                out.push('\'');
            }
            Some(col) => write_folded(s, col, block_indent, out, true),
        }
    } else {
        let col = breaks_at(out);
        write_double_quoted(s, col, block_indent, out);
    }
}

/// A plain (or single-quoted) scalar as yaml.v3 writes it with line
/// breaks: a single space past the line width becomes a line break and
/// the indentation. Columns count characters.
fn write_folded(s: &str, mut col: usize, indent_to: usize, out: &mut String, quoted: bool) {
    if quoted {
        out.push('\'');
        col += 1;
    }
    let bytes = s.as_bytes();
    let last = bytes.len().saturating_sub(1);
    let mut spaces = false;
    // text not yet copied starts at `from`
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b' ' => {
                let inner = !quoted || (i != 0 && i != last);
                if !spaces && col > BEST_WIDTH && inner && bytes.get(i + 1) != Some(&b' ') {
                    out.push_str(&s[from..i]);
                    out.push('\n');
                    indent(out, indent_to);
                    col = indent_to;
                    from = i + 1;
                } else {
                    col += 1;
                }
                spaces = true;
            }
            b'\'' if quoted => {
                out.push_str(&s[from..=i]);
                out.push('\'');
                from = i + 1;
                col += 2;
                spaces = false;
            }
            // a continuation byte of a multi-byte character: same column
            b if b & 0xC0 == 0x80 => {}
            _ => {
                col += 1;
                spaces = false;
            }
        }
    }
    out.push_str(&s[from..]);
    if quoted {
        out.push('\'');
    }
}

fn printable(c: char) -> bool {
    match c {
        '\t' | '\n' => true,
        '\u{20}'..='\u{7e}' => true,
        '\u{85}' => false,
        '\u{a0}'..='\u{d7ff}' => true,
        '\u{e000}'..='\u{fffd}' => c != '\u{feff}',
        // yaml.v3 counts no character outside the Basic Multilingual Plane
        // as printable (they are written escaped)
        '\u{10000}'..='\u{10ffff}' => false,
        _ => false,
    }
}

fn literal_allowed(s: &str) -> bool {
    if !s.contains('\n') {
        return false;
    }
    // yaml.v3 takes a tab for a special character: no block then
    if !s
        .chars()
        .all(|c| printable(c) && c != '\t' && c != '\u{2028}' && c != '\u{2029}')
    {
        return false;
    }
    // Like yaml.v2, no literal block when a line ends in white space.
    if s.split('\n').any(|l| l.ends_with(' ') || l.ends_with('\t')) {
        return false;
    }
    // yaml.v3 takes no block for a value ending in a space
    !s.ends_with(' ')
}

fn write_literal(s: &str, block_indent: usize, out: &mut String) {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push('|');
    // a value starting with white space or a line break states its
    // indentation, as yaml.v3 writes it
    if s.starts_with([' ', '\n']) {
        out.push('2');
    }
    match trailing {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    out.push('\n');
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if !line.is_empty() {
            indent(out, block_indent);
            out.push_str(line);
        }
    }
    // `body` ends without a newline; the chomping indicator accounts for
    // the line breaks that follow it.
    for _ in 0..trailing.max(1) {
        out.push('\n');
    }
    // The caller writes the line break that ends the entry.
    out.pop();
}

/// A double-quoted scalar; with `col` (the column it starts at), broken
/// at spaces past the line width as yaml.v3 does (a space after the break
/// is escaped).
fn write_double_quoted(s: &str, col: Option<usize>, indent_to: usize, out: &mut String) {
    let start = out.len();
    out.push('"');
    let chars: Vec<char> = s.chars().collect();
    let mut spaces = false;
    let mut line_start = start;
    let mut first_col = col.unwrap_or(0);
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let here = first_col + out[line_start..].chars().count();
            if col.is_some() && !spaces && here > BEST_WIDTH && i != 0 && i != chars.len() - 1 {
                out.push('\n');
                indent(out, indent_to);
                line_start = out.len();
                first_col = indent_to;
                if chars.get(i + 1) == Some(&' ') {
                    out.push('\\');
                }
            } else {
                out.push(' ');
            }
            spaces = true;
            continue;
        }
        spaces = false;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if !printable(c) => {
                let code = c as u32;
                if code <= 0xff {
                    let _ = write!(out, "\\x{code:02X}");
                } else if code <= 0xffff {
                    let _ = write!(out, "\\u{code:04X}");
                } else {
                    let _ = write!(out, "\\U{code:08X}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether `s` can be written as a plain scalar and still read back as the
/// same string by YAML 1.1 and 1.2 readers alike.
fn plain_allowed(s: &str) -> bool {
    if s.is_empty() || could_be_non_string(s) {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    let last = s.chars().next_back().unwrap_or(' ');
    if matches!(
        first,
        '-' | '?'
            | ':'
            | ','
            | '['
            | ']'
            | '{'
            | '}'
            | '#'
            | '&'
            | '*'
            | '!'
            | '|'
            | '>'
            | '\''
            | '"'
            | '%'
            | '@'
            | '`'
            | ' '
    ) && (first != '-' || s.len() <= 1 || s.starts_with("- ") || s.starts_with("---"))
    {
        return false;
    }
    if last == ' ' || last == ':' {
        return false;
    }
    if s.contains(": ") || s.contains(" #") {
        return false;
    }
    if s.is_ascii() {
        return s.bytes().all(|b| (0x20..=0x7e).contains(&b));
    }
    s.chars().all(|c| printable(c) && c != '\n' && c != '\t')
}

/// Does any common YAML reader (1.1 or 1.2) resolve this plain scalar to
/// something other than a string?
fn could_be_non_string(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if s.len() <= 5 && {
        let mut buf = [0u8; 5];
        let lower = &mut buf[..s.len()];
        lower.copy_from_slice(s.as_bytes());
        lower.make_ascii_lowercase();
        matches!(
            &*lower,
            b"y" | b"yes"
                | b"n"
                | b"no"
                | b"true"
                | b"false"
                | b"on"
                | b"off"
                | b"null"
                | b"~"
                | b"="
                | b"<<"
                | b".inf"
                | b"-.inf"
                | b"+.inf"
                | b".nan"
        )
    } {
        return true;
    }
    looks_numeric(s) || looks_like_timestamp(s)
}

fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// Integers (decimal, hex, octal, binary, sexagesimal, with underscores)
/// and floats in any YAML version's notation.
fn looks_numeric(s: &str) -> bool {
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    if t.is_empty() {
        return false;
    }
    let all = |rest: &str, ok: fn(char) -> bool| !rest.is_empty() && rest.chars().all(ok);
    for (prefix, ok) in [
        (
            "0x",
            (|c: char| c.is_ascii_hexdigit() || c == '_') as fn(char) -> bool,
        ),
        ("0X", |c: char| c.is_ascii_hexdigit() || c == '_'),
        ("0o", |c: char| ('0'..='7').contains(&c) || c == '_'),
        ("0b", |c: char| c == '0' || c == '1' || c == '_'),
    ] {
        if let Some(rest) = t.strip_prefix(prefix) {
            return all(rest, ok);
        }
    }
    if t.contains(':') {
        return t.starts_with(|c: char| c.is_ascii_digit())
            && t.chars()
                .all(|c| c.is_ascii_digit() || c == '_' || c == ':' || c == '.');
    }
    // [digits_] ['.' [digits_]] [e [sign] digits], with at least one digit
    // before the exponent.
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mut digits = 0;
    let mut dots = 0;
    for c in mantissa.chars() {
        match c {
            '0'..='9' => digits += 1,
            '_' => {}
            '.' => dots += 1,
            _ => return false,
        }
    }
    if digits == 0 || dots > 1 {
        return false;
    }
    match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
        }
    }
}

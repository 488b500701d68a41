//! YAML I/O: the only module that knows YAML syntax.
//!
//! Reading follows what `kubectl kustomize` does with a scalar: it is resolved
//! the way Go's `yaml.v3` resolves it (so `0644` is the octal 420, `1_000` is
//! 1000 and `2001-12-14` is a timestamp) and then passed through JSON. Writing
//! follows the shape of kustomize's output (sorted keys, block style, sequences
//! not indented under their key) and quotes every string that any YAML 1.1 or
//! 1.2 reader could take for something else, so the documents read back as the
//! same values whatever parser reads them.
//!
//! Parsing is bounded: nesting depth and the nodes produced by alias expansion
//! are limited, so an alias bomb is an error rather than a memory blow-up.

use std::collections::HashMap;
use std::fmt::Write as _;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

/// Deepest nesting of collections accepted in one document.
const MAX_DEPTH: usize = 256;
/// Most nodes that alias expansion may add to one file.
const MAX_ALIAS_NODES: usize = 1_000_000;

/// A YAML syntax or value error, with the position where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlError {
    /// 1-based line of the error.
    pub line: usize,
    /// 1-based column of the error.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl YamlError {
    fn at(span: Span, message: impl Into<String>) -> Self {
        YamlError {
            line: span.start.line(),
            column: span.start.col() + 1,
            message: message.into(),
        }
    }
}

/// Parses every document of a YAML stream. Empty documents come back as `Null`.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Value>, YamlError> {
    parse_with(text, false)
}

/// Parses a kustomization file. kustomize reads these with YAML 1.1
/// rules, where `yes`, `no`, `on`, `off`, `y` and `n` are booleans.
pub(crate) fn parse_kustomization(text: &str) -> Result<Value, YamlError> {
    let mut docs = parse_with(text, true)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.remove(0)),
        n => Err(YamlError {
            line: 1,
            column: 1,
            message: format!("expected one YAML document, found {n}"),
        }),
    }
}

fn parse_with(text: &str, yaml11: bool) -> Result<Vec<Value>, YamlError> {
    let mut builder = Builder {
        yaml11,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| YamlError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        builder.event(event, span)?;
    }
    Ok(builder.documents)
}

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        map: Map<String, Value>,
        key: Option<String>,
        merges: Vec<Value>,
        anchor: usize,
        span: Span,
    },
}

#[derive(Default)]
struct Builder {
    documents: Vec<Value>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Value, usize)>,
    alias_nodes: usize,
    root: Option<Value>,
    yaml11: bool,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            Event::DocumentStart(_) => self.root = None,
            Event::DocumentEnd => {
                let root = self.root.take().unwrap_or(Value::Null);
                self.documents.push(root);
                self.anchors.clear();
            }
            Event::Alias(id) => {
                let Some((value, size)) = self.anchors.get(&id) else {
                    return Err(YamlError::at(span, "unknown alias"));
                };
                self.alias_nodes += size;
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(YamlError::at(
                        span,
                        format!(
                            "aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?)"
                        ),
                    ));
                }
                let value = value.clone();
                self.push(value, span, false)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let mut value = resolve_scalar(&text, style, tag.as_deref(), span)?;
                if self.yaml11 && style == ScalarStyle::Plain && tag.is_none() {
                    match text.as_ref() {
                        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
                            value = Value::Bool(true)
                        }
                        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
                            value = Value::Bool(false)
                        }
                        _ => {}
                    }
                }
                let is_merge_key = style == ScalarStyle::Plain && tag.is_none() && text == "<<";
                if anchor != 0 {
                    self.anchors.insert(anchor, (value.clone(), 1));
                }
                self.push(value, span, is_merge_key)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.check_depth(span)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                self.check_depth(span)?;
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    key: None,
                    merges: Vec::new(),
                    anchor,
                    span,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { items, anchor }) = self.stack.pop() {
                    let value = Value::Array(items);
                    self.remember(anchor, &value);
                    self.push(value, span, false)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    mut map,
                    merges,
                    anchor,
                    span: start,
                    ..
                }) = self.stack.pop()
                {
                    for merge in merges {
                        apply_merge(&mut map, merge, start)?;
                    }
                    let value = Value::Object(map);
                    self.remember(anchor, &value);
                    self.push(value, span, false)?;
                }
            }
        }
        Ok(())
    }

    fn check_depth(&self, span: Span) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError::at(
                span,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, value: &Value) {
        if anchor != 0 {
            self.anchors
                .insert(anchor, (value.clone(), count_nodes(value)));
        }
    }

    fn push(&mut self, value: Value, span: Span, is_merge_key: bool) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, key, merges, ..
            }) => match key.take() {
                None => {
                    if is_merge_key {
                        *key = Some(MERGE_KEY.to_string());
                    } else {
                        *key = Some(key_string(&value, span)?);
                    }
                }
                Some(k) if k == MERGE_KEY => merges.push(value),
                Some(k) => {
                    if map.contains_key(&k) {
                        return Err(YamlError::at(
                            span,
                            format!("mapping key {k:?} already defined"),
                        ));
                    }
                    map.insert(k, value);
                }
            },
        }
        Ok(())
    }
}

/// Stands for the `<<` merge key while its mapping is being built.
const MERGE_KEY: &str = "\u{0}<<merge>>";

fn apply_merge(map: &mut Map<String, Value>, merge: Value, span: Span) -> Result<(), YamlError> {
    match merge {
        Value::Object(source) => {
            for (k, v) in source {
                if !map.contains_key(&k) {
                    map.insert(k, v);
                }
            }
            Ok(())
        }
        Value::Array(sources) => {
            for source in sources {
                if !source.is_object() {
                    return Err(YamlError::at(
                        span,
                        "map merge requires a map or a sequence of maps",
                    ));
                }
                apply_merge(map, source, span)?;
            }
            Ok(())
        }
        _ => Err(YamlError::at(
            span,
            "map merge requires a map or a sequence of maps",
        )),
    }
}

fn count_nodes(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

fn key_string(value: &Value, span: Span) -> Result<String, YamlError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok("null".to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(number_text(n)),
        _ => Err(YamlError::at(
            span,
            "a mapping key must be a scalar (complex keys are not supported)",
        )),
    }
}

fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    span: Span,
) -> Result<Value, YamlError> {
    if let Some(tag) = tag {
        if tag.is_yaml_core_schema() {
            return match tag.suffix.as_str() {
                "str" | "binary" => Ok(Value::String(text.to_string())),
                "null" => Ok(Value::Null),
                "bool" => match text {
                    "true" | "True" | "TRUE" => Ok(Value::Bool(true)),
                    "false" | "False" | "FALSE" => Ok(Value::Bool(false)),
                    _ => Err(YamlError::at(
                        span,
                        format!("cannot decode {text:?} as !!bool"),
                    )),
                },
                "int" | "float" => match resolve_plain(text, span)? {
                    v @ Value::Number(_) => Ok(v),
                    _ => Err(YamlError::at(
                        span,
                        format!("cannot decode {text:?} as !!{}", tag.suffix),
                    )),
                },
                "timestamp" => match parse_timestamp(text) {
                    Some(t) => Ok(Value::String(t)),
                    None => Err(YamlError::at(
                        span,
                        format!("cannot decode {text:?} as !!timestamp"),
                    )),
                },
                _ => resolve_plain(text, span),
            };
        }
        // Local tags (`!foo`) and the non-specific `!`: the value stays a string.
        return Ok(Value::String(text.to_string()));
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    resolve_plain(text, span)
}

/// Resolves an untagged plain scalar as Go's yaml.v3 does.
fn resolve_plain(text: &str, span: Span) -> Result<Value, YamlError> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => {
            return Err(YamlError::at(
                span,
                format!("unsupported value {text} (not representable in JSON)"),
            ));
        }
        _ => {}
    }
    let first = text.as_bytes()[0];
    if first == b'.' {
        if let Some(f) = go_parse_float(text) {
            return float_value(f, text, span);
        }
        return Ok(Value::String(text.to_string()));
    }
    if !(first.is_ascii_digit() || first == b'+' || first == b'-') {
        return Ok(Value::String(text.to_string()));
    }
    if let Some(t) = parse_timestamp(text) {
        return Ok(Value::String(t));
    }
    let plain: String = text.chars().filter(|c| *c != '_').collect();
    if let Some(i) = go_parse_int(&plain) {
        return Ok(Value::Number(Number::from(i)));
    }
    if let Some(u) = go_parse_uint(&plain) {
        return Ok(Value::Number(Number::from(u)));
    }
    if is_yaml_style_float(&plain)
        && let Some(f) = go_parse_float(&plain)
    {
        return float_value(f, text, span);
    }
    Ok(Value::String(text.to_string()))
}

fn float_value(f: f64, text: &str, span: Span) -> Result<Value, YamlError> {
    // kustomize's output passes through JSON, where an integral float is
    // written (and read back) as an integer.
    if f.fract() == 0.0 {
        let json = go_json_float(f);
        if let Ok(i) = json.parse::<i64>() {
            return Ok(Value::Number(Number::from(i)));
        }
        if let Ok(u) = json.parse::<u64>() {
            return Ok(Value::Number(Number::from(u)));
        }
    }
    Number::from_f64(f).map(Value::Number).ok_or_else(|| {
        YamlError::at(
            span,
            format!("unsupported value {text} (not representable in JSON)"),
        )
    })
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseInt(s, 0, 64)` (underscores already removed).
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let magnitude = parse_prefixed_unsigned(rest)?;
    if negative {
        if magnitude <= i64::MAX as u64 + 1 {
            Some((magnitude as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else if magnitude <= i64::MAX as u64 {
        Some(magnitude as i64)
    } else {
        None
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` (no sign accepted).
fn go_parse_uint(s: &str) -> Option<u64> {
    parse_prefixed_unsigned(s)
}

fn parse_prefixed_unsigned(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (radix, digits) = if b[0] == b'0' && b.len() > 1 {
        match b[1] {
            b'x' | b'X' => (16, &s[2..]),
            b'b' | b'B' => (2, &s[2..]),
            b'o' | b'O' => (8, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms YAML can produce.
fn go_parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let body = match b.first()? {
        b'+' | b'-' => &s[1..],
        _ => s,
    };
    if body.is_empty()
        || !body
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        || !body.bytes().any(|c| c.is_ascii_digit())
    {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    f.is_finite().then_some(f)
}

/// yaml.v3's timestamp check, answering the RFC 3339 text Go's JSON encoder
/// would write for the resulting `time.Time`.
fn parse_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let mut p = Cursor { s: b, i: 0 };
    let year = p.digits(4, 4)?;
    p.expect(b'-')?;
    let month = p.digits(1, 2)?;
    p.expect(b'-')?;
    let day = p.digits(1, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    if p.done() {
        return Some(format!("{date}T00:00:00Z"));
    }
    let sep = p.next()?;
    let zoned = match sep {
        b'T' | b't' => true,
        b' ' => false,
        _ => return None,
    };
    let hour = p.digits(1, 2)?;
    p.expect(b':')?;
    let minute = p.digits(1, 2)?;
    p.expect(b':')?;
    let second = p.digits(1, 2)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut fraction = String::new();
    if p.peek() == Some(b'.') {
        p.i += 1;
        let start = p.i;
        while p.peek().is_some_and(|c| c.is_ascii_digit()) {
            p.i += 1;
        }
        if p.i == start {
            return None;
        }
        fraction = String::from_utf8_lossy(&b[start..p.i]).into_owned();
        fraction.truncate(9);
        while fraction.ends_with('0') {
            fraction.pop();
        }
    }
    let zone = if zoned {
        match p.next()? {
            b'Z' => "Z".to_string(),
            sign @ (b'+' | b'-') => {
                let zh = p.digits(2, 2)?;
                p.expect(b':')?;
                let zm = p.digits(2, 2)?;
                if zh == 0 && zm == 0 {
                    "Z".to_string()
                } else {
                    format!("{}{zh:02}:{zm:02}", sign as char)
                }
            }
            _ => return None,
        }
    } else {
        "Z".to_string()
    };
    if !p.done() {
        return None;
    }
    let fraction = if fraction.is_empty() {
        String::new()
    } else {
        format!(".{fraction}")
    };
    Some(format!(
        "{date}T{hour:02}:{minute:02}:{second:02}{fraction}{zone}"
    ))
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        while self.i - start < max && self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i - start < min {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

// ---------------------------------------------------------------------------
// Numbers as Go writes them.

/// The text kustomize's output shows for a number: Go's JSON encoding, read
/// back and written again by yaml.v2.
pub(crate) fn number_text(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let json = go_json_float(f);
    if json == "-0" {
        return "0".to_string();
    }
    if !json.contains(['.', 'e', 'E'])
        && (json.parse::<i64>().is_ok() || json.parse::<u64>().is_ok())
    {
        return json;
    }
    go_format_g(f)
}

/// Go's `encoding/json` text for a float64.
pub(crate) fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (mantissa, exp) = shortest_exp(f);
        let sign = if exp < 0 { '-' } else { '+' };
        let digits = exp.unsigned_abs();
        if exp < 0 {
            format!("{mantissa}e{sign}{digits}")
        } else {
            format!("{mantissa}e{sign}{digits:02}")
        }
    } else {
        format!("{f}")
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`.
fn go_format_g(f: f64) -> String {
    let (mantissa, exp) = shortest_exp(f);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        format!("{f}")
    }
}

/// The shortest round-trip mantissa (`d.ddd`) and the decimal exponent.
fn shortest_exp(f: f64) -> (String, i32) {
    let text = format!("{f:e}");
    match text.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse().unwrap_or(0)),
        None => (text, 0),
    }
}

// ---------------------------------------------------------------------------
// Go-compatible JSON (for content hashes).

/// Writes `value` as Go's `json.Marshal` would for the same data decoded into
/// `interface{}`: sorted keys, HTML-safe escapes, numbers as float64.
pub(crate) fn go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_json_float(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => go_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(k, out);
                out.push(':');
                go_json(&map[k], out);
            }
            out.push('}');
        }
    }
}

fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------
// Writing.

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
    for _ in 0..n {
        out.push(' ');
    }
}

fn write_map(map: &Map<String, Value>, level: usize, first_inline: bool, out: &mut String) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 || !first_inline {
            indent(out, level);
        }
        write_string(key, level, false, out);
        out.push(':');
        match &map[key] {
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

fn write_string(s: &str, block_indent: usize, allow_block: bool, out: &mut String) {
    if allow_block && literal_allowed(s) {
        write_literal(s, block_indent, out);
    } else if could_be_non_string(s) {
        write_double_quoted(s, out);
    } else if plain_allowed(s) {
        out.push_str(s);
    } else if s.chars().all(|c| printable(c) && c != '\n' && c != '\t') {
        out.push('\'');
        for c in s.chars() {
            if c == '\'' {
                out.push('\'');
            }
            out.push(c);
        }
        out.push('\'');
    } else {
        write_double_quoted(s, out);
    }
}

fn printable(c: char) -> bool {
    match c {
        '\t' | '\n' => true,
        '\u{20}'..='\u{7e}' => true,
        '\u{85}' => false,
        '\u{a0}'..='\u{d7ff}' => true,
        '\u{e000}'..='\u{fffd}' => c != '\u{feff}',
        '\u{10000}'..='\u{10ffff}' => true,
        _ => false,
    }
}

fn literal_allowed(s: &str) -> bool {
    if !s.contains('\n') || s.trim_matches('\n').is_empty() {
        return false;
    }
    if !s
        .chars()
        .all(|c| printable(c) && c != '\u{2028}' && c != '\u{2029}')
    {
        return false;
    }
    // Like yaml.v2, no literal block when a line ends in white space.
    if s.split('\n').any(|l| l.ends_with(' ') || l.ends_with('\t')) {
        return false;
    }
    // The first non-empty line fixes the block's indentation: it must not
    // start with white space.
    let first = s.split('\n').find(|l| !l.is_empty()).unwrap_or("");
    !(first.starts_with(' ') || first.starts_with('\t'))
}

fn write_literal(s: &str, block_indent: usize, out: &mut String) {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push('|');
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

fn write_double_quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
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
    if s.contains(": ") || s.contains(" #") || s.contains(":\t") {
        return false;
    }
    s.chars().all(|c| printable(c) && c != '\n' && c != '\t')
}

/// Does any common YAML reader (1.1 or 1.2) resolve this plain scalar to
/// something other than a string?
fn could_be_non_string(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "y" | "yes"
            | "n"
            | "no"
            | "true"
            | "false"
            | "on"
            | "off"
            | "null"
            | "~"
            | "="
            | "<<"
            | ".inf"
            | "-.inf"
            | "+.inf"
            | ".nan"
    ) {
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

/// Parses a YAML text into a value without documents (used for inline
/// patches and small strings). An empty text is `Null`.
pub(crate) fn parse_single(text: &str) -> Result<Value, YamlError> {
    let mut docs = parse_documents(text)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.remove(0)),
        n => Err(YamlError {
            line: 1,
            column: 1,
            message: format!("expected one YAML document, found {n}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        let docs = parse_documents(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        let out = write_documents(&docs);
        assert_eq!(out, expected, "input:\n{input}");
    }

    #[test]
    fn scalars_resolve_like_kustomize() {
        let cases = [
            ("a: 0777", "a: 511\n"),
            ("a: '0777'", "a: \"0777\"\n"),
            ("a: 1_000", "a: 1000\n"),
            ("a: 1.0", "a: 1\n"),
            ("a: 1e3", "a: 1000\n"),
            ("a: 0x1F", "a: 31\n"),
            ("a: 08", "a: 8\n"),
            ("a: 1234567.5", "a: 1.2345675e+06\n"),
            ("a: 100000.5", "a: 100000.5\n"),
            ("a: 0.00001", "a: 1e-05\n"),
            ("a: 1e20", "a: 1e+20\n"),
            ("a: 1e19", "a: 10000000000000000000\n"),
            ("a: 18446744073709551616", "a: 1.8446744073709552e+19\n"),
            ("a: -9223372036854775809", "a: -9.223372036854776e+18\n"),
            ("a: 2001-12-14", "a: \"2001-12-14T00:00:00Z\"\n"),
            (
                "a: 2001-12-14T21:59:43.10-05:00",
                "a: \"2001-12-14T21:59:43.1-05:00\"\n",
            ),
            ("a: on", "a: \"on\"\n"),
            ("Y: y", "\"Y\": \"y\"\n"),
            ("a: ~", "a: null\n"),
            ("a:", "a: null\n"),
            ("a: -0.0", "a: 0\n"),
            ("a: +.5e2", "a: 50\n"),
            ("a: 0b2", "a: 0b2\n"),
            ("a: !!str 123", "a: \"123\"\n"),
            ("a: !!int \"5\"", "a: 5\n"),
            ("a: \"line1\\nline2\\n\"", "a: |\n  line1\n  line2\n"),
            ("a: \"line1\\nline2\"", "a: |-\n  line1\n  line2\n"),
            ("a: \"tab\\there\"", "a: \"tab\\there\"\n"),
            ("a: 'a: b'", "a: 'a: b'\n"),
            ("a: -Xmx5m", "a: -Xmx5m\n"),
            ("a: '-'", "a: '-'\n"),
            ("a: é", "a: é\n"),
        ];
        for (input, expected) in cases {
            check(input, expected);
        }
    }

    #[test]
    fn structure_is_written_like_kustomize() {
        check(
            "b: {x: [1, {p: q, a: []}]}\na: [[1, 2], 3]\nc: {}\n",
            "a:\n- - 1\n  - 2\n- 3\nb:\n  x:\n  - 1\n  - a: []\n    p: q\nc: {}\n",
        );
    }

    #[test]
    fn merge_keys_and_anchors() {
        check(
            "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n",
            "base:\n  x: 1\n  \"y\": 2\nd:\n  x: 1\n  \"y\": 3\n",
        );
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            let _ = writeln!(
                text,
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]"
            );
        }
        let err = parse_documents(&text).expect_err("alias bomb must fail");
        assert!(err.message.contains("alias"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = parse_documents("a: 1\na: 2\n").expect_err("duplicate key");
        assert!(err.message.contains("already defined"), "{err}");
    }

    #[test]
    fn go_json_matches_go() {
        let v: Value = serde_json::json!({"b": "<&>", "a": 1.5e-7, "c": 5});
        let mut out = String::new();
        go_json(&v, &mut out);
        assert_eq!(out, r#"{"a":1.5e-7,"b":"\u003c\u0026\u003e","c":5}"#);
    }
}

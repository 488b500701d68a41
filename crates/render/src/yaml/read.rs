//! Reading YAML as Go's yaml.v3 reads it (and kustomize then passes it
//! through JSON): scalar resolution, merge keys, anchors, block scalars.
//! Parsing is bounded: nesting depth and the nodes produced by alias
//! expansion are limited, so an alias bomb is an error rather than a
//! memory blow-up.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

use super::YamlError;
use super::number::{go_json_float, number_text};

/// Deepest nesting of collections accepted in one document.
const MAX_DEPTH: usize = 256;
/// Most nodes that alias expansion may add to one file.
const MAX_ALIAS_NODES: usize = 1_000_000;

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
        // yaml.v3 adds no line break to a block scalar the text ends in
        // without one; the position of the end (in characters) tells.
        unterminated_end: (!text.is_empty() && !text.ends_with('\n')).then(|| text.chars().count()),
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
    unterminated_end: Option<usize>,
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
            Event::Scalar(mut text, style, anchor, tag) => {
                if style == ScalarStyle::Folded {
                    text = std::borrow::Cow::Owned(v3_folding(&text));
                }
                if matches!(style, ScalarStyle::Folded | ScalarStyle::Literal)
                    && self.unterminated_end == Some(span.end.index())
                    && text.ends_with('\n')
                {
                    let mut owned = text.into_owned();
                    owned.pop();
                    text = std::borrow::Cow::Owned(owned);
                }
                if !self.yaml11
                    && text.bytes().any(|b| matches!(b, 0x7f | 0xc2 | 0xef))
                    && text.chars().any(reread_refuses)
                {
                    // kustomize passes objects through JSON and reads them
                    // back as YAML, which refuses these characters
                    return Err(YamlError::at(
                        span,
                        "control characters are not allowed (kustomize cannot read the object back)",
                    ));
                }
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
                        if !self.yaml11 && !value.is_string() {
                            // kustomize cannot turn such a mapping into JSON
                            return Err(YamlError::at(
                                span,
                                format!(
                                    "mapping key {} is not a string (quote it): kustomize cannot convert the mapping to JSON",
                                    super::write_documents(std::slice::from_ref(&value)).trim_end()
                                ),
                            ));
                        }
                        *key = Some(key_string(value, span)?);
                    }
                }
                Some(k) if k == MERGE_KEY => merges.push(value),
                Some(k) => match map.entry(k) {
                    serde_json::map::Entry::Vacant(slot) => {
                        slot.insert(value);
                    }
                    serde_json::map::Entry::Occupied(mut slot) => {
                        if !self.yaml11 {
                            return Err(YamlError::at(
                                span,
                                format!("mapping key {:?} already defined", slot.key()),
                            ));
                        }
                        slot.insert(value);
                    }
                },
            },
        }
        Ok(())
    }
}

/// Characters a YAML reader refuses that Go's JSON encoding leaves as they
/// are: DEL, the C1 controls but NEL, and the non-characters U+FFFE, U+FFFF.
fn reread_refuses(c: char) -> bool {
    matches!(c, '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}')
}

/// yaml.v3 folds a `>` scalar like the YAML spec, except that it keeps one
/// more line break before a more-indented line that follows a normal one.
/// `spec` is the spec's folding (what the parser produced).
fn v3_folding(spec: &str) -> String {
    if !spec.contains("\n ") && !spec.contains("\n\t") {
        return spec.to_string();
    }
    let mut out = String::with_capacity(spec.len() + 8);
    // whether the last non-empty line seen was a normal (not more-indented) one
    let mut last_normal = false;
    for (i, line) in spec.split('\n').enumerate() {
        let more_indented = line.starts_with([' ', '\t']);
        if i > 0 {
            if more_indented && last_normal {
                out.push('\n');
            }
            out.push('\n');
        }
        out.push_str(line);
        if !line.is_empty() {
            last_normal = !more_indented;
        }
    }
    out
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

fn key_string(value: Value, span: Span) -> Result<String, YamlError> {
    match value {
        Value::String(s) => Ok(s),
        Value::Null => Ok("null".to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(number_text(&n)),
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

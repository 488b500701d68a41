//! YAML I/O: the only module of this crate that knows YAML syntax, so a
//! maintained fork of `serde_yaml` can replace it here alone.
//!
//! Kubeconfigs arrive from users, so reading is guarded before any value is
//! built: one document only, bounded nesting, and no aliases at all (a real
//! kubeconfig never needs them, and refusing them rules out alias bombs whatever
//! the parser's own limits are). Error messages carry a position and a
//! description of the syntax problem, never the text of the document: it may be
//! full of credentials.

use std::fmt;

use saphyr_parser::{Event, Parser};
use serde_json::Value;

/// Deepest nesting of mappings and sequences accepted (a kubeconfig needs about 8).
const MAX_DEPTH: usize = 64;

/// Why a text is not one readable YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    /// 1-based line of the problem (0 when unknown).
    pub line: usize,
    /// 1-based column of the problem (0 when unknown).
    pub column: usize,
    /// What is wrong; never quotes the document.
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(
                f,
                "{} (line {}, column {})",
                self.message, self.line, self.column
            )
        }
    }
}

/// Parses a single YAML document into a JSON value (`Null` for an empty text).
pub(crate) fn parse_document(text: &str) -> Result<Value, YamlError> {
    prescan(text)?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_yaml::from_str::<Value>(text).map_err(|error| {
        let (line, column) = error
            .location()
            .map_or((0, 0), |at| (at.line(), at.column()));
        // serde's own message can quote a scalar of the document: keep it out
        YamlError {
            line,
            column,
            message: "a value cannot be read as JSON-compatible YAML (e.g. a non-string key or a custom tag)"
                .into(),
        }
    })
}

/// Writes a value as a block-style YAML document.
pub(crate) fn to_string(value: &Value) -> String {
    // serialising a JSON value cannot fail in practice; JSON is YAML too
    serde_yaml::to_string(value).unwrap_or_else(|_| value.to_string())
}

/// Walks the event stream once: syntax errors, several documents, deep nesting
/// and aliases are refused before anything is built.
fn prescan(text: &str) -> Result<(), YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    let mut documents = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|error| YamlError {
            line: error.marker().line(),
            column: error.marker().col() + 1,
            message: format!("not valid YAML: {}", error.info()),
        })?;
        let at = |message: &str| YamlError {
            line: span.start.line(),
            column: span.start.col() + 1,
            message: message.to_owned(),
        };
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(at("a kubeconfig is one YAML document, found several"));
                }
            }
            Event::Alias(_) => {
                return Err(at("YAML aliases (*name) are not accepted in a kubeconfig"));
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(at("the document is nested too deeply for a kubeconfig"));
                }
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(text: &str, expected: Result<Value, &str>) {
        match (parse_document(text), expected) {
            (Ok(value), Ok(want)) => assert_eq!(value, want, "{text}"),
            (Err(error), Err(want)) => assert!(
                error.message.contains(want),
                "{text}: `{error}` should contain `{want}`"
            ),
            (got, want) => panic!("{text}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn documents_are_read_or_refused() {
        check(
            "a: 1\nb: [x, true]\n",
            Ok(json!({"a": 1, "b": ["x", true]})),
        );
        check("", Ok(Value::Null));
        check("a: &x 1\nb: *x\n", Err("aliases"));
        check("a: 1\n---\nb: 2\n", Err("several"));
        check("a: [1, 2\n", Err("not valid YAML"));
        check(
            &format!("{}1{}", "[".repeat(100), "]".repeat(100)),
            Err("nested"),
        );
        check("? [1]\n: x\n", Err("cannot be read"));
    }

    #[test]
    fn an_alias_bomb_is_refused_without_expanding() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        check(&text, Err("aliases"));
    }

    #[test]
    fn errors_do_not_quote_the_document() {
        let error = parse_document("token: s3cr3t-value\n  bad: [").unwrap_err();
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
        let error = parse_document("? [s3cr3t]\n: x\n").unwrap_err();
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
    }

    #[test]
    fn written_documents_read_back() {
        let value = json!({"apiVersion": "v1", "n": "null", "t": "true", "x": "0123", "u": "https://h:1/p"});
        assert_eq!(parse_document(&to_string(&value)).unwrap(), value);
    }
}

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
//!
//! The reader is `read` (Go yaml.v3's scalar resolution and block scalars),
//! the writer `write` (kustomize's output shape) and `number` Go's number
//! and JSON formatting.

mod number;
mod read;
mod write;

pub(crate) use number::{go_json, number_text};
pub(crate) use read::{parse_documents, parse_kustomization};
pub(crate) use write::write_documents;

use serde_json::Value;

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
    pub(super) fn at(span: saphyr_parser::Span, message: impl Into<String>) -> Self {
        YamlError {
            line: span.start.line(),
            column: span.start.col() + 1,
            message: message.into(),
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
    use std::fmt::Write as _;

    use super::*;
    use crate::yaml::number::go_json;

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
    fn block_scalars_read_like_yaml_v3() {
        let cases = [
            // no line break added at the very end of the text
            ("a: |\n  x\n  y", "a: |-\n  x\n  y\n"),
            ("a: >\n  x\n  y", "a: x y\n"),
            ("a: |\n  x\n  y\n", "a: |\n  x\n  y\n"),
            ("a: |\n  x\nb: 1", "a: |\n  x\nb: 1\n"),
            // one more break before a more-indented line after a normal one
            ("a: >\n  x\n    y\n  z\n", "a: |\n  x\n\n    y\n  z\n"),
            (
                "a: >\n  x\n    y\n\n    w\n  z\n",
                "a: |\n  x\n\n    y\n\n    w\n  z\n",
            ),
            ("a: >\n  x\n  y\n", "a: |\n  x y\n"),
        ];
        for (input, expected) in cases {
            check(input, expected);
        }
    }

    #[test]
    fn long_values_break_like_yaml_v3() {
        let words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho";
        check(
            &format!("k: {words}\n"),
            "k: alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron\n  pi rho\n",
        );
        check(
            &format!("a:\n  b:\n  - \"x: {words}\"\n"),
            "a:\n  b:\n  - 'x: alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron\n    pi rho'\n",
        );
        check(
            &format!("k: \"tab\\t{words}\"\n"),
            "k: \"tab\\talpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi\n  omicron pi rho\"\n",
        );
        // keys are never broken; two spaces are not a break
        check(
            &format!("\"{words} {words}\": 1\n"),
            &format!("{words} {words}: 1\n"),
        );
    }

    #[test]
    fn strings_are_styled_like_yaml_v3() {
        // a value starting with a space states its indentation
        check("a: \"  x\\ny\\n\"\n", "a: |2\n    x\n  y\n");
        // characters outside the Basic Multilingual Plane are escaped
        check("a: \"go 🚀\"\n", "a: \"go \\U0001F680\"\n");
        // no block for a value ending in a space
        check("a: \"x\\ny \"\n", "a: \"x\\ny \"\n");
    }

    #[test]
    fn non_string_keys_are_refused_in_resources() {
        for text in ["a:\n  true: 1\n", "80: http\n", "~: x\n"] {
            let err = parse_documents(text).expect_err(text);
            assert!(err.message.contains("not a string"), "{err}");
        }
        assert!(parse_documents("\"80\": http\n").is_ok());
        assert!(parse_kustomization("80: http\n").is_ok());
    }

    #[test]
    fn kustomization_keys_repeat_with_the_last_value() {
        let k = parse_kustomization("a: 1\na: 2\n").expect("parses");
        assert_eq!(k, serde_json::json!({"a": 2}));
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

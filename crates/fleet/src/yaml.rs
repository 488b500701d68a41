//! YAML I/O: the only module of this crate that knows YAML syntax.
//!
//! Kubeconfigs arrive from users, so reading is guarded by the parser's
//! budget: one document only, bounded nesting, and no anchors or aliases at all (a real
//! kubeconfig never needs them, and refusing them rules out alias bombs whatever
//! the parser's own limits are). Error messages carry a position and a
//! description of the syntax problem, never the text of the document: it may be
//! full of credentials.

use std::fmt;

use serde_json::Value;
use serde_saphyr::{Budget, Options};

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

/// Parses a single YAML document into a JSON value (`Null` for an empty
/// text), with one parser (serde-saphyr, the one kube itself uses) under a
/// budget: one document, bounded nesting, no anchors or aliases.
pub(crate) fn parse_document(text: &str) -> Result<Value, YamlError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let mut budget = Budget::default();
    budget.max_documents = 1;
    budget.max_depth = MAX_DEPTH;
    budget.max_anchors = 0;
    budget.max_aliases = 0;
    let mut options = Options::default();
    options.budget = Some(budget);
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|error| describe(&error))
}

/// What went wrong, where, in words of our own: the parser's messages can
/// quote the document (and so its credentials).
fn describe(error: &serde_saphyr::Error) -> YamlError {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    let error = error.without_snippet();
    let (line, column) = error.location().map_or((0, 0), |at| {
        (
            usize::try_from(at.line()).unwrap_or(0),
            usize::try_from(at.column()).unwrap_or(0),
        )
    });
    let message = match error {
        // the scanner's own words describe the grammar, never the text
        E::ExternalMessage { source, msg, .. }
            if matches!(**source, serde_saphyr::ExternalMessageSource::Parser(_)) =>
        {
            return YamlError {
                line,
                column,
                message: format!("not valid YAML: {msg}"),
            };
        }
        E::Budget {
            breach: B::Aliases { .. } | B::Anchors { .. },
            ..
        } => "YAML anchors and aliases (&name, *name) are not accepted in a kubeconfig",
        E::Budget {
            breach: B::Depth { .. },
            ..
        } => "the document is nested too deeply for a kubeconfig",
        E::Budget {
            breach: B::Documents { .. },
            ..
        }
        | E::MultipleDocuments { .. } => "a kubeconfig is one YAML document, found several",
        E::Budget { .. } => "the document is too large for a kubeconfig",
        E::Message { .. }
        | E::Eof { .. }
        | E::IndentationError { .. }
        | E::UnexpectedSequenceEnd { .. }
        | E::UnexpectedMappingEnd { .. }
        | E::ContainerEndMismatch { .. } => "not valid YAML",
        _ => {
            "a value cannot be read as JSON-compatible YAML (e.g. a non-string key or a custom tag)"
        }
    };
    YamlError {
        line,
        column,
        message: message.to_owned(),
    }
}

/// Writes a value as a block-style YAML document.
pub(crate) fn to_string(value: &Value) -> String {
    // serialising a JSON value cannot fail in practice; JSON is YAML too
    serde_saphyr::to_string(value).unwrap_or_else(|_| value.to_string())
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
        check("a: &x 1\n", Err("anchors"));
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

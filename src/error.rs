//! Errors: one sentence each, drawn with a caret under the place in the expression.

use crate::eval::EvalError;
use crate::values::ValueError;
use std::fmt;

/// A byte range in the expression text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
}

/// A problem found in an expression's text: syntax, names or shapes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// One sentence, without a final period.
    pub message: String,
    /// Where in the text.
    pub span: Span,
}

impl ExprError {
    /// An error at a place.
    pub fn new(message: impl Into<String>, span: Span) -> ExprError {
        ExprError {
            message: message.into(),
            span,
        }
    }
}

/// Everything that can stop a jacob command. Every variant exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error inside an expression, with the expression's text to draw the caret.
    #[error("{}", render(&.error.message, .text, .error.span))]
    InExpr {
        /// The problem.
        error: ExprError,
        /// The expression it was found in.
        text: String,
    },
    /// A command-line option that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// A derivative jacob cannot form (yet) for this input.
    #[error("{0}")]
    Unsupported(String),
    /// A numeric problem while evaluating.
    #[error("{0}")]
    Eval(#[from] EvalError),
    /// A `--set` value that cannot be read.
    #[error("{0}")]
    Value(#[from] ValueError),
    /// Reading standard input or writing output failed.
    #[error("{0}")]
    Io(String),
}

impl Error {
    /// Attaches an expression's text to an error found in it.
    pub fn in_expr(error: ExprError, text: &str) -> Error {
        Error::InExpr {
            error,
            text: text.to_string(),
        }
    }

    /// The process exit code for this error (SPEC §4): always 2, the input could not be used.
    pub fn exit_code(&self) -> i32 {
        2
    }
}

/// The message, then the expression with a caret under the span.
fn render(message: &str, text: &str, span: Span) -> String {
    // Expressions read from a file can hold newlines; show the line with the error.
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end];
    let column = text[line_start..start].chars().count();
    let width = text[start..span.end.clamp(start, line_end)]
        .chars()
        .count()
        .max(1);
    // Very long inputs: show a window around the caret.
    let (shown, column) = window(line, column, 70);
    format!(
        "{message}\n  {shown}\n  {}{}",
        " ".repeat(column),
        "^".repeat(width.min(70))
    )
}

fn window(line: &str, column: usize, half: usize) -> (String, usize) {
    let n = line.chars().count();
    if n <= 2 * half {
        return (line.to_string(), column);
    }
    let from = column.saturating_sub(half);
    let to = (column + half).min(n);
    let mut shown: String = line.chars().skip(from).take(to - from).collect();
    let mut column = column - from;
    if from > 0 {
        shown.insert(0, '…');
        column += 1;
    }
    if to < n {
        shown.push('…');
    }
    (shown, column)
}

/// Shortens a piece of source text for use inside a message.
pub fn snippet(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= 30 {
        text.to_string()
    } else {
        let head: String = text.chars().take(27).collect();
        format!("{head}…")
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

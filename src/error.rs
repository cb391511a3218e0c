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
    /// An invariant of jacob's own failed: a bug to report, not a problem with the input.
    #[error("internal error: {0} (a bug in jacob; please report it with the command)")]
    Internal(String),
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

    /// What kind of error this is, as a stable name for programs (JSON, a web page):
    /// `expression` (syntax, names, shapes: it has a span), `usage`, `unsupported`,
    /// `eval`, `value`, `io` or `internal`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InExpr { .. } => "expression",
            Error::Usage(_) => "usage",
            Error::Unsupported(_) => "unsupported",
            Error::Eval(_) => "eval",
            Error::Value(_) => "value",
            Error::Io(_) => "io",
            Error::Internal(_) => "internal",
        }
    }
}

/// The message, then the expression with a caret under the span.
///
/// Characters that would act on the terminal rather than show (control characters,
/// invisible bidirectional marks) are drawn escaped, `\x07`, and the caret stays
/// under the character it points at.
fn render(message: &str, text: &str, span: Span) -> String {
    // Expressions read from a file can hold newlines; show the line with the error.
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end];
    // A CRLF line ending is not part of the expression.
    let line = line.strip_suffix('\r').unwrap_or(line);
    let column = text[line_start..start].chars().count();
    let end = floor_char_boundary(text, span.end.min(line_start + line.len()).max(start));
    let width = text[start..end].chars().count().max(1);
    // Very long inputs: show a window around the caret.
    let (shown, column) = window(line, column, 70);
    // Columns on screen: an escaped character takes the width of its escape.
    let mut out = String::new();
    let mut caret_from = 0;
    let mut caret_to = 0;
    for (i, c) in shown.chars().enumerate() {
        if i == column {
            caret_from = out.chars().count();
        }
        match (c, visible(c)) {
            // A tab shows as one space, so the caret still lines up.
            ('\t', _) => out.push(' '),
            (_, Some(escape)) => out.push_str(&escape),
            (_, None) => out.push(c),
        }
        if i < column + width {
            caret_to = out.chars().count();
        }
    }
    if column >= shown.chars().count() {
        caret_from = out.chars().count();
        caret_to = caret_from + 1;
    }
    let carets = caret_to.saturating_sub(caret_from).clamp(1, 70);
    format!(
        "{message}\n  {out}\n  {}{}",
        " ".repeat(caret_from),
        "^".repeat(carets)
    )
}

/// The largest char boundary of `text` at or below `i`.
fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// How a character that would not show as itself on a terminal is drawn: control
/// characters as `\0`, `\t`, `\x1b`, …, and invisible format characters (bidirectional
/// overrides, zero-width spaces, the byte-order mark) as `\u{202e}`; `None` for a
/// character that shows as itself.
pub fn visible(c: char) -> Option<String> {
    match c {
        '\0' => Some("\\0".to_string()),
        '\t' => Some("\\t".to_string()),
        '\r' => Some("\\r".to_string()),
        '\n' => Some("\\n".to_string()),
        c if (c as u32) < 0x80 && c.is_control() => Some(format!("\\x{:02x}", c as u32)),
        c if c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{00ad}') =>
        {
            Some(format!("\\u{{{:x}}}", c as u32))
        }
        _ => None,
    }
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

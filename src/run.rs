//! Runs a command: reads the expression(s), calls the stages, writes the answer.
//! The only module that touches standard input, output and error.

use crate::check::{CheckReport, CheckRequest};
use crate::cli::{CheckArgs, Cli, Command, Config, EvalArgs, FormArg, Format, LayoutArg};
use crate::diff::Layout;
use crate::error::Error;
use crate::eval::{self, Env};
use crate::graph::{Graph, Id, Symbol};
use crate::numeric;
pub use crate::pipeline::{folded, kind_notes, parse_text, variable};
use crate::print;
use crate::shape::{DimNames, Shape};
use clap::Parser;
use serde_json::json;
use std::io::{BufRead, Write};

/// What one expression produced: the lines for standard output and error, and
/// whether a check disagreed.
#[derive(Default, Debug)]
pub struct Answer {
    /// Standard output.
    pub out: String,
    /// Notes and warnings.
    pub notes: Vec<String>,
    /// `check` found a disagreement (exit 1).
    pub disagrees: bool,
}

/// Runs jacob with command-line `args` (the first is the program name); returns the
/// exit code (SPEC §4).
pub fn run<I, T>(
    args: I,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let text = e.render().to_string();
            let _ = if code == 0 {
                write!(stdout, "{text}")
            } else {
                write!(stderr, "{}", shown(&text))
            };
            return code;
        }
    };
    match &cli.command {
        Command::Completions(a) => return completions(a.shell, stdout),
        Command::Man(a) => return manual(a.command.as_deref(), stdout, stderr),
        _ => {}
    }
    let Some(common) = cli.command.common() else {
        return 0;
    };
    let config = match cli.command.config() {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(stderr, "error: {}", shown(&e.to_string()));
            return e.exit_code();
        }
    };
    if common.expr != "-" {
        return match answer(&cli.command, &config, &common.expr) {
            Ok(a) => {
                let _ = write!(stdout, "{}", a.out);
                for n in &a.notes {
                    let _ = writeln!(stderr, "note: {}", shown(n));
                }
                i32::from(a.disagrees)
            }
            Err(e) => {
                let _ = writeln!(stderr, "error: {}", shown(&e.to_string()));
                if config.format == Format::Json {
                    let j = json_error(
                        cli.command.name(),
                        &common.expr,
                        &e.to_string(),
                        Some(&e),
                        None,
                    );
                    let _ = writeln!(stdout, "{j}");
                }
                e.exit_code()
            }
        };
    }
    // With `--explain`, a blank line between one expression's steps and the next.
    let explain =
        matches!(&cli.command, Command::Diff(a) if a.explain) && config.format != Format::Json;
    let mut answered = false;
    // Batch mode: one expression per line; an error on a line does not stop the rest.
    let mut failed = false;
    let mut disagreed = false;
    let mut line_no = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stdin.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(stderr, "error: cannot read standard input: {e}");
                return 2;
            }
        }
        line_no += 1;
        let Ok(line) = std::str::from_utf8(&buf) else {
            let message = "the line is not valid UTF-8 text";
            let _ = writeln!(stderr, "error: line {line_no}: {message}");
            if config.format == Format::Json {
                let input = String::from_utf8_lossy(&buf);
                let input = input.trim_end_matches(['\n', '\r']);
                let j = json_error(cli.command.name(), input, message, None, Some(line_no));
                let _ = writeln!(stdout, "{j}");
            }
            failed = true;
            continue;
        };
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        match answer(&cli.command, &config, line) {
            Ok(a) => {
                if explain && std::mem::replace(&mut answered, true) {
                    let _ = writeln!(stdout);
                }
                let _ = write!(
                    stdout,
                    "{}",
                    labelled(&cli.command, &config, line_no, &a.out)
                );
                for n in &a.notes {
                    let _ = writeln!(stderr, "note: line {line_no}: {}", shown(n));
                }
                disagreed |= a.disagrees;
            }
            Err(e) => {
                let _ = writeln!(stderr, "error: line {line_no}: {}", shown(&e.to_string()));
                if config.format == Format::Json {
                    let j = json_error(
                        cli.command.name(),
                        line,
                        &e.to_string(),
                        Some(&e),
                        Some(line_no),
                    );
                    let _ = writeln!(stdout, "{j}");
                }
                failed = true;
            }
        }
        let _ = stdout.flush();
    }
    if failed { 2 } else { i32::from(disagreed) }
}

/// An answer in batch mode, labelled with the line of standard input it answers: in
/// JSON, a `"line"` field in each object; in the text of `check`, whose answer takes
/// several lines, `line N: ` before each of them. (Other text answers are one line per
/// input, in order.)
fn labelled(command: &Command, config: &Config, line_no: usize, out: &str) -> String {
    match config.format {
        Format::Json => out
            .lines()
            .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
                Ok(mut j) if j.is_object() => {
                    j["line"] = json!(line_no);
                    format!("{j}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect(),
        _ if matches!(command, Command::Check(_)) => out
            .lines()
            .map(|l| format!("line {line_no}: {l}\n"))
            .collect(),
        _ => out.to_string(),
    }
}

/// The JSON object that stands in for the answer to an input that failed, so that a
/// program reading `--format json` output keeps one object per input:
/// `{"command": …, "input": …, "error": …, "line": …}` (the whole message, caret lines
/// included).
/// With the error itself, also its `kind` and, for an error in the expression, the
/// sentence alone (`message`), the byte range it points at (`span`) and the text that
/// range is in (`span_in`: the input, or a claim).
fn json_error(
    command: &str,
    input: &str,
    message: &str,
    error: Option<&Error>,
    line: Option<usize>,
) -> serde_json::Value {
    let mut j = json!({"command": command, "input": input, "error": message});
    if let Some(e) = error {
        j["kind"] = json!(e.kind());
        if let Error::InExpr { error, text } = e {
            j["message"] = json!(error.message);
            j["span"] = json!([error.span.start, error.span.end]);
            // The text the span is in: the input, or a claim.
            j["span_in"] = json!(text);
        }
    }
    if let Some(n) = line {
        j["line"] = json!(n);
    }
    j
}

/// A message as written to the terminal: characters that would act on the terminal
/// instead of showing (control characters other than newlines, bidirectional marks)
/// are escaped, so that `--wrt $'x\a'` cannot ring a bell or recolor the screen.
fn shown(message: &str) -> String {
    message
        .chars()
        .map(|c| match c {
            '\n' => "\n".to_string(),
            c => crate::error::visible(c).unwrap_or_else(|| c.to_string()),
        })
        .collect()
}

/// Runs one command on one expression.
pub fn answer(command: &Command, config: &Config, text: &str) -> Result<Answer, Error> {
    match command {
        Command::Diff(a) => {
            let what = Derivative {
                wrt: &a.wrt,
                layout: a.layout,
                explain: a.explain,
                equation: a.equation,
                hessian: false,
                form: a.form,
            };
            differentiate(&what, config, text)
        }
        Command::Hess(a) => {
            let what = Derivative {
                wrt: &a.wrt,
                layout: LayoutArg::Mixed,
                explain: false,
                equation: a.equation,
                hessian: true,
                form: a.form,
            };
            differentiate(&what, config, text)
        }
        Command::Simplify(_) => simplify(config, text),
        Command::Shape(_) => shape(config, text),
        Command::Eval(a) => evaluate(a, config, text),
        Command::Check(a) => check(a, config, text),
        Command::Completions(_) | Command::Man(_) => Err(Error::Usage(format!(
            "`{}` takes no expression",
            command.name()
        ))),
    }
}

/// What `diff` or `hess` is asked for.
struct Derivative<'a> {
    wrt: &'a str,
    layout: LayoutArg,
    explain: bool,
    equation: bool,
    hessian: bool,
    form: FormArg,
}

/// The names `--wrt` lists: `W1,b1,W2` is three, in order; none may repeat.
fn wrt_names(wrt: &str) -> Result<Vec<&str>, Error> {
    let names: Vec<&str> = wrt.split(',').map(str::trim).collect();
    if names.len() > 1 && names.iter().any(|n| n.is_empty()) {
        return Err(Error::Usage(format!(
            "--wrt `{wrt}` has an empty name in its list: write the variables as W1,b1,W2"
        )));
    }
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(Error::Usage(format!(
                "--wrt names {n} twice: list each variable once"
            )));
        }
    }
    Ok(names)
}

fn differentiate(a: &Derivative, config: &Config, text: &str) -> Result<Answer, Error> {
    let hessian = a.hessian;
    let mut g = Graph::new();
    let parsed = parse_text(&mut g, &config.decls, text)?;
    let mut answer = Answer::default();
    answer.notes.extend(kind_notes(&parsed));
    let names = wrt_names(a.wrt)?;
    let vars = names
        .iter()
        .map(|n| variable(&g, &parsed, text, n))
        .collect::<Result<Vec<Symbol>, Error>>()?;
    let f = g.simplify(parsed.root, false);
    let layout: Layout = a.layout.into();
    let differential = a.form == FormArg::Differential;
    if differential && (a.explain || a.layout != LayoutArg::Mixed) {
        return Err(Error::Usage(
            "--form differential prints dF in terms of dX: it has no layout and no --explain steps"
                .into(),
        ));
    }
    if a.explain && vars.len() > 1 {
        return Err(Error::Usage(
            "--explain shows the steps for one variable at a time: give --wrt one name".into(),
        ));
    }
    let code = config.format.is_code();
    if code && (differential || a.explain || a.equation) {
        return Err(Error::Usage(
            "--format numpy and --format jax write code for the derivatives themselves: leave out --form differential, --explain and --equation".into(),
        ));
    }
    let mut ds = Vec::with_capacity(vars.len());
    for &var in &vars {
        ds.push(crate::pipeline::derivative_of(
            &mut g,
            f,
            var,
            layout,
            hessian,
            differential,
        )?);
    }
    folded(&g, text)?;
    if code {
        answer.out = python(
            &g,
            config,
            text,
            parsed.root,
            f,
            if hessian {
                crate::codegen::Derivatives::Second
            } else {
                crate::codegen::Derivatives::First
            },
            vars.iter().copied().zip(ds.iter().copied()).collect(),
        )?;
        return Ok(answer);
    }
    // The answer is printed before `--explain` names its steps, so it is the same text.
    // `--equation` shows the input as typed (the text itself, or its LaTeX as parsed),
    // not as simplified.
    let typed = Typed {
        text: text.trim(),
        root: parsed.root,
    };
    let statement = |var: Symbol, d: Id, latex: bool| {
        if differential {
            differential_equation(&g, &typed, d, hessian, latex)
        } else {
            equation(&g, &typed, var, d, layout, hessian, latex)
        }
    };
    // The rows of a LaTeX document for the answer (`--standalone`).
    let answer_rows = |g: &Graph| -> Vec<String> {
        vars.iter()
            .zip(&ds)
            .flat_map(|(&var, &d)| {
                if a.equation {
                    equation_rows(g, &typed, var, d, layout, hessian)
                } else {
                    crate::latex::rows(g, &[latex_item(d)])
                }
            })
            .collect()
    };
    // One derivative as JSON: the fields of the answer's object, and of each entry of
    // its `derivatives`.
    let one_json = |var: Symbol, d: Id| {
        json!({
            "wrt": g.symbol(var).name,
            "result": print::text(&g, d),
            "latex": crate::latex::latex(&g, d),
            "shape": shape_json(&g, g.shape(d)),
            "equation": statement(var, d, true),
        })
    };
    let out = match config.format {
        Format::Latex if config.standalone => crate::latex::document(&answer_rows(&g)),
        Format::Json => {
            let derivatives: Vec<serde_json::Value> = vars
                .iter()
                .zip(&ds)
                .map(|(&var, &d)| one_json(var, d))
                .collect();
            // One variable: its derivative's fields at the top, as before lists.
            let mut j = if vars.len() == 1 {
                derivatives[0].clone()
            } else {
                json!({
                    "wrt": names,
                })
            };
            j["input"] = json!(text);
            j["layout"] = json!(layout.name());
            j["command"] = json!(if hessian { "hess" } else { "diff" });
            j["form"] = json!(if differential {
                "differential"
            } else {
                "jacobian"
            });
            j["vec"] = json!("column-major");
            j["derivatives"] = json!(derivatives);
            format!("{j}\n")
        }
        // One line per variable, each read back alone.
        format => vars
            .iter()
            .zip(&ds)
            .map(|(&var, &d)| match format {
                _ if a.equation => format!("{}\n", statement(var, d, format == Format::Latex)),
                Format::Latex => format!("{}\n", crate::latex::latex(&g, d)),
                _ => format!("{}\n", print::text(&g, d)),
            })
            .collect(),
    };
    if !a.explain {
        answer.out = out;
        return Ok(answer);
    }
    let var = vars[0];
    if hessian {
        return Err(Error::Usage(
            "--explain shows the steps of `diff`; for a Hessian, explain the gradient with `diff` first".into(),
        ));
    }
    let steps = crate::explain::explain(&mut g, f, var, layout)
        .map_err(|e| Error::Unsupported(e.to_string()))?;
    answer.out = match config.format {
        Format::Json => {
            let mut j: serde_json::Value = serde_json::from_str(&out)
                .map_err(|e| Error::Internal(format!("cannot build the JSON answer: {e}")))?;
            j["steps"] = json!(steps.render(&g, false));
            j["steps_latex"] = json!(steps.render(&g, true));
            format!("{j}\n")
        }
        // One `align*` block, steps then answer, to paste into a document (or, with
        // `--standalone`, the whole document).
        Format::Latex => {
            let mut rows: Vec<String> = steps
                .render(&g, true)
                .iter()
                .flat_map(|l| crate::latex::break_row(&format!("& {l}")))
                .collect();
            if config.standalone {
                rows.extend(answer_rows(&g));
                crate::latex::document(&rows)
            } else {
                rows.push(format!("& {}", out.trim_end()));
                crate::latex::block(&rows)
            }
        }
        _ => steps.render(&g, false).join("\n") + "\n" + &out,
    };
    Ok(answer)
}

/// The Python module (`--format numpy|jax`) for an expression and its derivatives.
fn python(
    g: &Graph,
    config: &Config,
    text: &str,
    typed: Id,
    value: Id,
    kind: crate::codegen::Derivatives,
    derivatives: Vec<(Symbol, Id)>,
) -> Result<String, Error> {
    let target = match config.format {
        Format::Jax => crate::codegen::Target::Jax,
        _ => crate::codegen::Target::Numpy,
    };
    let m = crate::codegen::Module {
        target,
        text,
        typed,
        value,
        kind,
        derivatives,
    };
    crate::codegen::module(g, &m).map_err(|e| Error::Unsupported(e.to_string()))
}

/// An expression alone, as one item of a LaTeX document.
fn latex_item(id: Id) -> crate::latex::Item {
    crate::latex::Item {
        lhs: String::new(),
        id,
        tail: String::new(),
    }
}

/// `\frac{\partial f}{\partial \mathbf{x}}` for `of` = `f`, `\frac{\partial}{\partial
/// \mathbf{x}}` for an empty `of`; second derivatives for a Hessian.
fn derivative_op(g: &Graph, var: Symbol, hessian: bool, of: &str) -> String {
    let vector = !g.dims.is_scalar(g.symbol(var).shape);
    let x = crate::latex::symbol(g, var);
    let of = if of.is_empty() {
        String::new()
    } else {
        format!(" {of}")
    };
    match (hessian, vector) {
        (false, _) => format!(r"\frac{{\partial{of}}}{{\partial {x}}}"),
        (true, true) => {
            format!(r"\frac{{\partial^{{2}}{of}}}{{\partial {x} \, \partial {x}^\top}}")
        }
        (true, false) => format!(r"\frac{{\partial^{{2}}{of}}}{{\partial {x}^{{2}}}}"),
    }
}

/// What the statement of a derivative says after it: its layout (`note`) and the
/// matrices declared symmetric in the expression, as text (`mixed layout, A symmetric`)
/// and as LaTeX (`\text{(mixed layout, }\mathbf{A}\text{ symmetric)}`).
fn assumptions(g: &Graph, note: &str) -> (String, String) {
    let symmetric: Vec<Symbol> = g
        .symbols()
        .filter(|(_, info)| info.kind == crate::graph::Kind::Symmetric)
        .map(|(s, _)| s)
        .collect();
    if symmetric.is_empty() {
        return (note.to_string(), format!(r"\text{{({note})}}"));
    }
    let text: Vec<&str> = symmetric
        .iter()
        .map(|&s| g.symbol(s).name.as_str())
        .collect();
    let latex: Vec<String> = symmetric
        .iter()
        .map(|&s| crate::latex::symbol(g, s))
        .collect();
    (
        format!("{note}, {} symmetric", text.join(", ")),
        format!(
            r"\text{{({note}, }}{}\text{{ symmetric)}}",
            latex.join(r"\text{, }")
        ),
    )
}

/// The rows of `--equation --standalone`: `∂/∂x (f) = …` on one row when the input is
/// short, else `f = …` (the input, as typed, broken like any row) and then `∂f/∂x = …`.
fn equation_rows(
    g: &Graph,
    f: &Typed,
    var: Symbol,
    d: Id,
    layout: Layout,
    hessian: bool,
) -> Vec<String> {
    let tail = format!(
        r" \quad {}",
        assumptions(g, &format!("{} layout", layout.name())).1
    );
    let input = crate::latex::latex(g, f.root);
    let short = crate::latex::width(&input) <= 20.0 && !input.contains(r"\begin");
    let items = if short {
        vec![crate::latex::Item {
            lhs: format!(
                r"{}\left({input}\right)",
                derivative_op(g, var, hessian, "")
            ),
            id: d,
            tail,
        }]
    } else {
        vec![
            crate::latex::Item {
                lhs: "f".to_string(),
                id: f.root,
                tail: String::new(),
            },
            crate::latex::Item {
                lhs: derivative_op(g, var, hessian, "f"),
                id: d,
                tail,
            },
        ]
    };
    crate::latex::rows(g, &items)
}

/// The input of `diff` or `hess` as the user typed it.
struct Typed<'a> {
    /// The text.
    text: &'a str,
    /// Its graph as parsed, before any rewrite.
    root: Id,
}

/// The whole statement `∂f/∂x = …` with its layout, for `--equation`: LaTeX
/// (`\frac{\partial}{\partial \mathbf{x}}\left(…\right) = …`) or text.
fn equation(
    g: &Graph,
    f: &Typed,
    var: Symbol,
    d: Id,
    layout: Layout,
    hessian: bool,
    latex: bool,
) -> String {
    let v = g.symbol(var);
    let vector = !g.dims.is_scalar(v.shape);
    let (note, latex_note) = assumptions(g, &format!("{} layout", layout.name()));
    if !latex {
        let lhs = match (hessian, vector) {
            (false, _) => format!("∂({})/∂{}", f.text, v.name),
            (true, true) => format!("∂²({})/∂{}∂{}'", f.text, v.name, v.name),
            (true, false) => format!("∂²({})/∂{}²", f.text, v.name),
        };
        return format!("{lhs} = {}  ({note})", print::text(g, d));
    }
    let op = derivative_op(g, var, hessian, "");
    let lhs = format!(r"{op}\left({}\right)", crate::latex::latex(g, f.root));
    crate::latex::statement(g, d, &lhs, &format!(r" \quad {latex_note}"))
}

/// The statement of a differential, `d(f) = …` (for a Hessian, `d(∇f) = …`).
fn differential_equation(g: &Graph, f: &Typed, d: Id, hessian: bool, latex: bool) -> String {
    let note = if hessian {
        "the Hessian applied to the differential"
    } else {
        "differential"
    };
    if !latex {
        let lhs = if hessian {
            format!("d(∇({}))", f.text)
        } else {
            format!("d({})", f.text)
        };
        return format!("{lhs} = {}  ({note})", print::text(g, d));
    }
    let inner = crate::latex::latex(g, f.root);
    let lhs = if hessian {
        format!(r"\mathrm{{d}}\left(\nabla\left({inner}\right)\right)")
    } else {
        format!(r"\mathrm{{d}}\left({inner}\right)")
    };
    crate::latex::statement(g, d, &lhs, &format!(r" \quad \text{{({note})}}"))
}

fn simplify(config: &Config, text: &str) -> Result<Answer, Error> {
    let mut g = Graph::new();
    let parsed = parse_text(&mut g, &config.decls, text)?;
    let s = g.simplify(parsed.root, true);
    folded(&g, text)?;
    if config.format.is_code() {
        let out = python(
            &g,
            config,
            text,
            s,
            s,
            crate::codegen::Derivatives::None,
            Vec::new(),
        )?;
        return Ok(Answer {
            notes: kind_notes(&parsed),
            out,
            ..Answer::default()
        });
    }
    Ok(Answer {
        notes: kind_notes(&parsed),
        out: render(&g, s, config, |j| {
            j["input"] = json!(text);
            j["command"] = json!("simplify");
        }),
        ..Answer::default()
    })
}

/// Prints an expression in the chosen format: one line, or with `--standalone` a
/// LaTeX document.
fn render(
    g: &Graph,
    id: Id,
    config: &Config,
    extra: impl FnOnce(&mut serde_json::Value),
) -> String {
    match config.format {
        Format::Text => format!("{}\n", print::text(g, id)),
        Format::Latex if config.standalone => {
            crate::latex::document(&crate::latex::rows(g, &[latex_item(id)]))
        }
        Format::Latex => format!("{}\n", crate::latex::latex(g, id)),
        // The Python formats are written by `python`, before `render` is reached.
        Format::Numpy | Format::Jax => format!("{}\n", print::text(g, id)),
        Format::Json => {
            let mut j = json!({
                "result": print::text(g, id),
                "latex": crate::latex::latex(g, id),
                "shape": shape_json(g, g.shape(id)),
            });
            extra(&mut j);
            format!("{j}\n")
        }
    }
}

/// A shape for JSON: `["n", 1]`, symbolic sizes named as `jacob shape` names them.
pub(crate) fn shape_json(g: &Graph, s: Shape) -> serde_json::Value {
    size_json(&crate::pipeline::shape_names(g, s))
}

/// Sizes for JSON: a number where the size is one, else its name.
fn size_json(sizes: &[String; 2]) -> serde_json::Value {
    let size = |name: &String| {
        name.parse::<u64>()
            .map_or_else(|_| json!(name), |n| json!(n))
    };
    json!([size(&sizes[0]), size(&sizes[1])])
}

fn shape(config: &Config, text: &str) -> Result<Answer, Error> {
    let mut g = Graph::new();
    let parsed = parse_text(&mut g, &config.decls, text)?;
    let mut env = Env::default();
    numeric::apply_dims(&g, &mut env, &config.decls.dims)?;
    let mut names = DimNames::default();
    // Each size as a number where `--dim` fixes it, else by name.
    let show = |s: Shape, names: &mut DimNames| -> [serde_json::Value; 2] {
        [s.rows, s.cols].map(|d| {
            numeric::size_of(&g, &env, d)
                .map_or_else(|| json!(names.name(&g.dims, d)), |n| json!(n))
        })
    };
    let plain = |[r, c]: &[serde_json::Value; 2]| {
        let one = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), String::from);
        format!("{}×{}", one(r), one(c))
    };
    // Name the symbols' sizes first, in order of appearance, so `A*x` reads n×m, m×1.
    let symbols: Vec<(String, Shape)> = g
        .symbols()
        .map(|(_, i)| (i.name.clone(), i.shape))
        .collect();
    let sym_shapes: Vec<(String, [serde_json::Value; 2])> = symbols
        .iter()
        .map(|(n, s)| (n.clone(), show(*s, &mut names)))
        .collect();
    let whole = show(g.shape(parsed.root), &mut names);
    let out = match config.format {
        Format::Json => {
            let symbols: serde_json::Map<String, serde_json::Value> = sym_shapes
                .iter()
                .map(|(n, s)| (n.clone(), json!(s)))
                .collect();
            format!(
                "{}\n",
                json!({"command": "shape", "input": text, "shape": whole, "symbols": symbols})
            )
        }
        _ => {
            let list: Vec<String> = sym_shapes
                .iter()
                .map(|(n, s)| format!("{n}: {}", plain(s)))
                .collect();
            format!("{}  ({})\n", plain(&whole), list.join(", "))
        }
    };
    Ok(Answer {
        out,
        notes: kind_notes(&parsed),
        ..Answer::default()
    })
}

fn evaluate(a: &EvalArgs, config: &Config, text: &str) -> Result<Answer, Error> {
    let mut g = Graph::new();
    let parsed = parse_text(&mut g, &config.decls, text)?;
    let mut env = Env::default();
    let mut notes = kind_notes(&parsed);
    for s in &a.set {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--set `{s}` should look like x=[1,2,3]")))?;
        let value = crate::values::parse_value(value.trim())?;
        if g.lookup(name.trim()).is_none() {
            notes.push(format!(
                "`{}` does not appear in the expression; its value is not used",
                name.trim()
            ));
            continue;
        }
        numeric::set_value(&g, &mut env, name.trim(), value)?;
    }
    numeric::apply_dims(&g, &mut env, &config.decls.dims)?;
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let missing: Vec<Symbol> = g
        .symbols()
        .map(|(s, _)| s)
        .filter(|s| !env.values.contains_key(s))
        .collect();
    if !missing.is_empty() {
        if !a.random {
            let names: Vec<String> = missing.iter().map(|&s| g.symbol(s).name.clone()).collect();
            return Err(Error::Usage(format!(
                "no value for {}: give it with --set, or use --random",
                names.join(", ")
            )));
        }
        numeric::choose_sizes(&g, &mut env, &mut rng);
        let mut held: usize = env.values.values().map(|v| v.len()).sum();
        for &s in &missing {
            let info = g.symbol(s);
            if let Some((r, c)) = numeric::numeric_shape(&g, &env, info.shape) {
                numeric::check_holdable(&info.name, r, c, held)?;
                held += r * c;
            }
        }
        for s in missing {
            let v = numeric::random_value(&g, &env, s, &mut rng, numeric::Draw::Signed)?;
            env.values.insert(s, v);
        }
    }
    let root = parsed.root;
    let value = eval::eval(&g, &[root], &env)
        .map_err(|e| numeric::explain(&g, e))?
        .pop()
        .ok_or_else(|| Error::Internal("nothing was evaluated".into()))?;
    let out = match config.format {
        Format::Json => format!(
            "{}\n",
            json!({"command": "eval", "value": numeric::rows(&value), "shape": [value.nrows(), value.ncols()], "input": text})
        ),
        Format::Latex if config.standalone => {
            crate::latex::document(&crate::latex::value_rows(&value))
        }
        Format::Latex => format!("{}\n", crate::latex::value(&value)),
        // Refused for `eval` by `Command::config`.
        Format::Text | Format::Numpy | Format::Jax => {
            format!("{}\n", numeric::format_value(&value))
        }
    };
    Ok(Answer {
        out,
        notes,
        ..Answer::default()
    })
}

/// `jacob completions SHELL`: the completion script on standard output.
fn completions(shell: clap_complete::Shell, stdout: &mut dyn Write) -> i32 {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "jacob", stdout);
    0
}

/// `jacob man [COMMAND]`: the manual page, jacob(1) or jacob-COMMAND(1), as roff.
fn manual(of: Option<&str>, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let mut jacob = <Cli as clap::CommandFactory>::command();
    jacob.build();
    let page = match of {
        None => jacob,
        Some(name) => match jacob.find_subcommand(name) {
            Some(sub) => {
                let (title, bin) = match name {
                    "diff" => ("jacob-diff", "jacob diff"),
                    "hess" => ("jacob-hess", "jacob hess"),
                    "simplify" => ("jacob-simplify", "jacob simplify"),
                    "shape" => ("jacob-shape", "jacob shape"),
                    "eval" => ("jacob-eval", "jacob eval"),
                    "check" => ("jacob-check", "jacob check"),
                    "completions" => ("jacob-completions", "jacob completions"),
                    _ => ("jacob-man", "jacob man"),
                };
                sub.clone()
                    .name(title)
                    .bin_name(bin)
                    .version(env!("CARGO_PKG_VERSION"))
            }
            None => {
                let _ = writeln!(stderr, "error: jacob has no command `{name}`");
                return 2;
            }
        },
    };
    match clap_mangen::Man::new(page).render(stdout) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "error: cannot write the manual page: {e}");
            2
        }
    }
}

/// `jacob check`: the library's check, as text or JSON.
pub(crate) fn check(a: &CheckArgs, config: &Config, text: &str) -> Result<Answer, Error> {
    let req = CheckRequest {
        text,
        decls: &config.decls,
        wrt: &a.wrt,
        layout: a.layout.into(),
        differential: a.form == FormArg::Differential,
        claim: a.claim.as_deref(),
        points: a.points,
        tol: a.tol,
        seed: config.seed,
    };
    let report = crate::check::check(&req)?;
    let out = match config.format {
        Format::Json => check_json(a, text, &report),
        _ => check_text(&report),
    };
    Ok(Answer {
        out,
        notes: report.notes,
        disagrees: !report.agrees,
    })
}

/// A check report as one JSON object.
fn check_json(a: &CheckArgs, text: &str, r: &CheckReport) -> String {
    let mut j = json!({
        "command": "check",
        "input": text,
        "wrt": a.wrt.trim(),
        "layout": r.layout.name(),
    });
    match (&r.wrong_shape, &r.derivative) {
        (why, None) | (why @ Some(_), _) => {
            j["claim"] = json!(r.checked);
            j["result"] = json!("disagrees");
            j["agrees"] = json!(false);
            j["reason"] = json!(why);
            j["jacob_derivative"] = json!(r.own);
            j["points"] = json!([]);
        }
        (None, Some(d)) => {
            let points: Vec<serde_json::Value> = r
                .points
                .iter()
                .map(|p| {
                    let sizes: serde_json::Map<String, serde_json::Value> =
                        p.sizes.iter().map(|(n, s)| (n.clone(), json!(s))).collect();
                    let mut o = json!({
                        "max_abs_error": finite_or_null(p.abs),
                        "max_rel_error": finite_or_null(p.rel),
                        "agrees": p.agrees,
                        "sizes": sizes,
                    });
                    if let Some(e) = &p.error {
                        o["error"] = json!(e);
                    }
                    o
                })
                .collect();
            j["form"] = json!(if r.differential {
                "differential"
            } else {
                "jacobian"
            });
            j["derivative"] = json!(d.text);
            j["result"] = json!(if r.agrees { "agrees" } else { "disagrees" });
            j["latex"] = json!(d.latex);
            j["shape"] = size_json(&d.shape);
            j["claim"] = json!(a.claim.as_deref().map(str::trim));
            j["jacob_derivative"] = json!(r.own);
            j["agrees"] = json!(r.agrees);
            j["points"] = json!(points);
        }
    }
    if !r.agrees_in_layouts.is_empty() {
        j["agrees_in_layouts"] = json!(r.agrees_in_layouts);
    }
    format!("{j}\n")
}

/// A check report as a line per point and a verdict.
fn check_text(r: &CheckReport) -> String {
    if let Some(why) = &r.wrong_shape {
        return format!("disagrees: {} has the wrong shape: {why}\n", r.checked);
    }
    let mut out = String::new();
    for (i, p) in r.points.iter().enumerate() {
        let sizes = if p.sizes.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = p.sizes.iter().map(|(n, s)| format!("{n}={s}")).collect();
            format!(" (sizes {})", list.join(", "))
        };
        match &p.error {
            Some(e) => out.push_str(&format!(
                "point {}: the derivative cannot be evaluated: {e}{sizes}\n",
                i + 1
            )),
            None => out.push_str(&format!(
                "point {}: max abs error {}, max rel error {}{sizes}{}\n",
                i + 1,
                fmt_err(p.abs),
                fmt_err(p.rel),
                if p.agrees { "" } else { " — differs" }
            )),
        }
    }
    let n = r.points.len();
    let plural = if n == 1 { "" } else { "s" };
    let form = if r.differential {
        "differential".to_string()
    } else {
        format!("{} layout", r.layout.name())
    };
    let checked = &r.checked;
    if r.agrees {
        out.push_str(&format!(
            "agrees: {checked} matches finite differences at {n} point{plural} ({form})\n"
        ));
    } else {
        let bad = r.points.iter().filter(|p| !p.agrees).count();
        let worst = r
            .points
            .iter()
            .filter(|p| !p.agrees)
            .map(|p| p.abs)
            .fold(0.0f64, f64::max);
        let worst = if worst.is_finite() {
            format!("worst abs error {}", fmt_err(worst))
        } else {
            "the derivative cannot be evaluated where the expression can".into()
        };
        out.push_str(&format!(
            "disagrees: {checked} differs from finite differences at {bad} of {n} point{plural} ({worst}; {form})\n"
        ));
    }
    out
}

fn finite_or_null(v: f64) -> serde_json::Value {
    if v.is_finite() {
        json!(v)
    } else {
        serde_json::Value::Null
    }
}

/// `2.1e-10`, `0.82`, `0`.
fn fmt_err(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if !v.is_finite() {
        "∞".into()
    } else if (1e-3..1e4).contains(&v) {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.1e}")
    }
}

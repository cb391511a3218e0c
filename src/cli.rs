//! Command-line arguments (clap) and their validation into a [`Config`].

use crate::diff::Layout;
use crate::error::Error;
use crate::pipeline::Declarations;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Symbolic matrix calculus: derivatives of matrix expressions, simplified.
#[derive(Parser, Debug)]
#[command(name = "jacob", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of SPEC §3, and the shell helpers.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// The derivative of EXPR by a variable, simplified.
    Diff(DiffArgs),
    /// The Hessian of a scalar EXPR by a variable.
    Hess(HessArgs),
    /// EXPR itself, simplified.
    Simplify(SimplifyArgs),
    /// The inferred shape of EXPR and of every symbol in it.
    Shape(ShapeArgs),
    /// The numeric value of EXPR.
    Eval(EvalArgs),
    /// Compares a derivative with central finite differences at random points.
    Check(CheckArgs),
    /// Prints a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Prints the manual page (roff), of jacob or of one command.
    Man(ManArgs),
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// jacob's own syntax, one line per expression.
    #[default]
    Text,
    /// LaTeX for `$…$` (with `--standalone`, a whole document).
    Latex,
    /// A JSON object per expression.
    Json,
    /// A Python module for NumPy: `value` (the expression as typed) and, for `diff` and
    /// `hess`, `value_and_grad` (the value and each derivative, sharing work).
    Numpy,
    /// The same module for JAX, its functions compiled with `jax.jit`.
    Jax,
}

impl Format {
    /// True for the Python formats.
    pub fn is_code(self) -> bool {
        matches!(self, Format::Numpy | Format::Jax)
    }
}

/// Output formats of the commands that answer in words and numbers (`shape`, `check`):
/// they have no LaTeX form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum ReportFormat {
    /// Lines of text.
    #[default]
    Text,
    /// A JSON object per expression.
    Json,
}

impl From<ReportFormat> for Format {
    fn from(f: ReportFormat) -> Format {
        match f {
            ReportFormat::Text => Format::Text,
            ReportFormat::Json => Format::Json,
        }
    }
}

/// What a derivative is printed as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum FormArg {
    /// The derivative itself: gradient, Jacobian (in `kron` form where a matrix is
    /// involved) or Hessian.
    #[default]
    Jacobian,
    /// The differential: dF in terms of dX, the differential of the variable X (for
    /// `hess`, the Hessian applied to dX).
    Differential,
}

/// Layouts as spelled on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum LayoutArg {
    /// Gradients shaped like the variable; Jacobians p×n.
    #[default]
    Mixed,
    /// Numerator layout: a scalar's gradient is a row.
    Numerator,
    /// Denominator layout: transposed numerator layout.
    Denominator,
}

/// The expression and what it declares: options every expression command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// The expression, or `-` to read one per line from standard input.
    #[arg(allow_hyphen_values = true)]
    pub expr: String,
    /// Names that are scalars (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub scalar: Vec<String>,
    /// Names that are column vectors.
    #[arg(long, value_delimiter = ',')]
    pub vector: Vec<String>,
    /// Names that are matrices.
    #[arg(long, value_delimiter = ',')]
    pub matrix: Vec<String>,
    /// Names that are symmetric matrices (S' = S).
    #[arg(long, value_delimiter = ',')]
    pub symmetric: Vec<String>,
    /// Fixes the size of a symbol of EXPR: `x=5`, `A=5x3`.
    #[arg(long, value_name = "NAME=SIZE")]
    pub dim: Vec<String>,
}

/// The output of a command that has a LaTeX form.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// With `--format latex`: a whole LaTeX document (amsmath) that pdflatex compiles as
    /// it is, long results broken across lines.
    #[arg(long)]
    pub standalone: bool,
}

/// Options of `diff`.
#[derive(Args, Debug, Clone, Default)]
pub struct DiffArgs {
    /// Common options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The variable to differentiate by; several, comma-separated (`W1,b1,W2`), give one
    /// derivative each, in order.
    #[arg(long)]
    pub wrt: String,
    /// The layout of the printed derivative.
    #[arg(long, value_enum, default_value_t = LayoutArg::Mixed)]
    pub layout: LayoutArg,
    /// Show the chain-rule steps, each Jacobian with its shape.
    #[arg(long)]
    pub explain: bool,
    /// Print the derivative, or its differential (`dX` is the differential of X).
    #[arg(long, value_enum, default_value_t = FormArg::Jacobian)]
    pub form: FormArg,
    /// Print the whole statement, `∂f/∂x = …` with its layout (LaTeX with `--format latex`).
    #[arg(long)]
    pub equation: bool,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Options of `hess`.
#[derive(Args, Debug, Clone, Default)]
pub struct HessArgs {
    /// Common options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The variable to differentiate by, twice; several, comma-separated, give one
    /// Hessian each, in order.
    #[arg(long)]
    pub wrt: String,
    /// Print the Hessian, or the Hessian applied to dX (the differential of the gradient).
    #[arg(long, value_enum, default_value_t = FormArg::Jacobian)]
    pub form: FormArg,
    /// Print the whole statement, `∂²f/∂x∂x' = …` (LaTeX with `--format latex`).
    #[arg(long)]
    pub equation: bool,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Options of `simplify`.
#[derive(Args, Debug, Clone, Default)]
pub struct SimplifyArgs {
    /// Common options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Options of `shape`.
#[derive(Args, Debug, Clone, Default)]
pub struct ShapeArgs {
    /// Common options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// Options of `eval`.
#[derive(Args, Debug, Clone, Default)]
pub struct EvalArgs {
    /// Common options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// A value: `x=[1,2,3]`, `A=[[1,2],[3,4]]`, `A=[1 2; 3 4]`, `c=2.5`, `X=@data.npy`.
    #[arg(long, value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Fill symbols without a value with seeded random values.
    #[arg(long)]
    pub random: bool,
    /// Seed for `--random`, so that the values are reproducible.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output (`--format latex` prints a `bmatrix`).
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Options of `check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Common options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The variable to differentiate by.
    #[arg(long)]
    pub wrt: String,
    /// The layout the claim is written in.
    #[arg(long, value_enum, default_value_t = LayoutArg::Mixed)]
    pub layout: LayoutArg,
    /// A derivative to check instead of jacob's own; a claim that uses dX (the
    /// differential of the variable X) is a differential.
    #[arg(long, allow_hyphen_values = true)]
    pub claim: Option<String>,
    /// Check jacob's derivative, or its differential along random directions dX.
    #[arg(long, value_enum, default_value_t = FormArg::Jacobian)]
    pub form: FormArg,
    /// How many random points.
    #[arg(long, default_value_t = 3)]
    pub points: usize,
    /// Relative tolerance.
    #[arg(long, default_value_t = 1e-5)]
    pub tol: f64,
    /// Seed for the random sizes and points, so that a check is reproducible.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

impl Default for CheckArgs {
    fn default() -> CheckArgs {
        CheckArgs {
            common: CommonArgs::default(),
            wrt: String::new(),
            layout: LayoutArg::Mixed,
            claim: None,
            form: FormArg::Jacobian,
            points: 3,
            tol: 1e-5,
            seed: 1,
            format: ReportFormat::Text,
        }
    }
}

/// Options of `completions`.
#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete jacob's commands and options in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Options of `man`.
#[derive(Args, Debug, Clone)]
pub struct ManArgs {
    /// A command whose page to print (`jacob-diff(1)`); without it, jacob's own page.
    #[arg(value_parser = ["diff", "hess", "simplify", "shape", "eval", "check", "completions", "man"])]
    pub command: Option<String>,
}

impl Command {
    /// The expression options of an expression command; `None` for the shell helpers.
    pub fn common(&self) -> Option<&CommonArgs> {
        Some(match self {
            Command::Diff(a) => &a.common,
            Command::Hess(a) => &a.common,
            Command::Simplify(a) => &a.common,
            Command::Shape(a) => &a.common,
            Command::Eval(a) => &a.common,
            Command::Check(a) => &a.common,
            Command::Completions(_) | Command::Man(_) => return None,
        })
    }

    /// The command's name, as typed: `diff`, `check`, ….
    pub fn name(&self) -> &'static str {
        match self {
            Command::Diff(_) => "diff",
            Command::Hess(_) => "hess",
            Command::Simplify(_) => "simplify",
            Command::Shape(_) => "shape",
            Command::Eval(_) => "eval",
            Command::Check(_) => "check",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
        }
    }

    /// The validated configuration of an expression command.
    pub fn config(&self) -> Result<Config, Error> {
        let (format, standalone, seed) = match self {
            Command::Diff(a) => (a.output.format, a.output.standalone, 1),
            Command::Hess(a) => (a.output.format, a.output.standalone, 1),
            Command::Simplify(a) => (a.output.format, a.output.standalone, 1),
            Command::Eval(a) => (a.output.format, a.output.standalone, a.seed),
            Command::Shape(a) => (a.format.into(), false, 1),
            Command::Check(a) => (a.format.into(), false, a.seed),
            Command::Completions(_) | Command::Man(_) => (Format::Text, false, 1),
        };
        if standalone && format != Format::Latex {
            return Err(Error::Usage(
                "--standalone makes a LaTeX document: use it with --format latex".into(),
            ));
        }
        if format.is_code()
            && !matches!(
                self,
                Command::Diff(_) | Command::Hess(_) | Command::Simplify(_)
            )
        {
            return Err(Error::Usage(format!(
                "`{}` has no Python form: --format numpy and --format jax are for diff, hess and simplify",
                self.name()
            )));
        }
        let common = self.common().cloned().unwrap_or_default();
        if format.is_code() && common.expr == "-" {
            return Err(Error::Usage(
                "--format numpy and --format jax write one Python module: give one expression, not - (standard input)".into(),
            ));
        }
        let mut config = Config::from_args(&common)?;
        config.format = format;
        config.standalone = standalone;
        config.seed = seed;
        Ok(config)
    }
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Layout {
        match l {
            LayoutArg::Mixed => Layout::Mixed,
            LayoutArg::Numerator => Layout::Numerator,
            LayoutArg::Denominator => Layout::Denominator,
        }
    }
}

/// Validated options shared by every command.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `--scalar`, `--vector`, `--matrix`, `--symmetric` and `--dim`.
    pub decls: Declarations,
    /// Output format.
    pub format: Format,
    /// `--standalone`: a whole LaTeX document.
    pub standalone: bool,
    /// Random seed.
    pub seed: u64,
}

impl Config {
    /// Checks the declarations and sizes; text output and seed 1 until the command
    /// says otherwise ([`Command::config`]).
    pub fn from_args(a: &CommonArgs) -> Result<Config, Error> {
        Ok(Config {
            decls: Declarations::new(&a.scalar, &a.vector, &a.matrix, &a.symmetric, &a.dim)?,
            format: Format::Text,
            standalone: false,
            seed: 1,
        })
    }
}

//! Reading the numeric values users give with `jacob eval --set NAME=VALUE`.
//!
//! A value is a number (`2.5`), a column vector (`[1,2,3]`), a matrix given by rows
//! (`[[1,2],[3,4]]`, or as MATLAB writes it, `[1 2; 3 4]`), or `@path` naming a JSON
//! file holding one of those or a NumPy `.npy` file.

use nalgebra::DMatrix;
use npyz::{DType, NpyFile, Order, TypeChar};
use serde_json::Value;

/// Why a value could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ValueError {
    /// The text is not a number, a list of numbers, or a list of rows.
    #[error(
        "expected a number, a list of numbers, or a list of rows ([[1,2],[3,4]] or [1 2; 3 4])"
    )]
    NotAValue,
    /// An entry is NaN or infinite.
    #[error("the value has an entry that is not a finite number")]
    NotFinite,
    /// An empty list or an empty row.
    #[error("an empty list is not a value")]
    Empty,
    /// A list that holds both numbers and lists.
    #[error("a list mixes numbers and lists")]
    Mixed,
    /// Lists nested more than two deep.
    #[error("lists nested more than two deep are not values (a matrix is a list of rows)")]
    TooDeep,
    /// Rows of a matrix with different lengths (rows counted from 1).
    #[error(
        "the rows of the matrix have different lengths (row {row} has {}, row 1 has {first})",
        entries(.len)
    )]
    Ragged {
        /// The first row whose length differs from row 1.
        row: usize,
        /// Its length.
        len: usize,
        /// The length of row 1.
        first: usize,
    },
    /// A file named with `@path` that cannot be read, or does not hold a value.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The path as given.
        path: String,
        /// What went wrong, as one plain sentence.
        reason: String,
    },
}

/// `1 entry`, `3 entries`.
fn entries(n: &usize) -> String {
    if *n == 1 {
        "1 entry".to_string()
    } else {
        format!("{n} entries")
    }
}

/// Parses VALUE: a number `2.5`, a vector `[1,2,3]` (a column, n×1), a matrix as rows
/// `[[1,2],[3,4]]`, or `@path` to a `.json` file holding one of those, or to a NumPy
/// `.npy` file (1-D → column vector, 2-D → matrix, 0-D → scalar; float64, float32
/// and integer dtypes, C or Fortran order).
pub fn parse_value(text: &str) -> Result<DMatrix<f64>, ValueError> {
    let text = text.trim();
    match text.strip_prefix('@') {
        Some(path) => parse_file(path.trim()),
        None => parse_text(text),
    }
}

/// Reads a value from a JSON or NumPy file.
fn parse_file(path: &str) -> Result<DMatrix<f64>, ValueError> {
    let fail = |reason: String| ValueError::File {
        path: path.to_string(),
        reason,
    };
    if path.is_empty() {
        return Err(fail("no file name follows @".to_string()));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(io_reason(&e)))?;
    let is_npy = bytes.starts_with(b"\x93NUMPY")
        || std::path::Path::new(path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if is_npy {
        return parse_npy(&bytes).map_err(fail);
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| fail("the file is neither JSON text nor a NumPy array".to_string()))?;
    parse_text(text).map_err(|e| fail(e.to_string()))
}

/// An I/O error as a sentence, without the "(os error N)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text.get(..i).unwrap_or(&text).to_string(),
        None => text,
    }
}

/// Reads JSON-like text (also accepting `.5`, `5.` and `+5`), or a MATLAB-style
/// matrix (`[1 2; 3 4]`).
fn parse_text(text: &str) -> Result<DMatrix<f64>, ValueError> {
    let normalized = normalize_numbers(text);
    match serde_json::from_str::<Value>(&normalized) {
        Ok(v) => from_json(&v),
        Err(_) if is_matlab(text) => from_matlab(text),
        Err(e) => {
            let lower = text.to_ascii_lowercase();
            if lower.contains("nan")
                || lower.contains("inf")
                || e.to_string().contains("number out of range")
            {
                Err(ValueError::NotFinite)
            } else if text
                .chars()
                .filter(|c| !c.is_whitespace())
                .take_while(|&c| c == '[')
                .count()
                > 2
            {
                Err(ValueError::TooDeep)
            } else {
                Err(ValueError::NotAValue)
            }
        }
    }
}

/// Rewrites number spellings that JSON lacks: `.5` → `0.5`, `5.` → `5.0`, and a
/// leading `+` is dropped.
fn normalize_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    // The last character written that is not whitespace.
    let mut last: Option<char> = None;
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let next = chars.get(i + 1).copied();
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
        match c {
            '.' => {
                if !digit(prev) && digit(next) {
                    out.push('0');
                }
                out.push('.');
                if digit(prev) && !digit(next) {
                    out.push('0');
                }
            }
            '+' if matches!(last, None | Some('[' | ',')) && (digit(next) || next == Some('.')) => {
            }
            _ => out.push(c),
        }
        if !c.is_whitespace() {
            last = Some(c);
        }
    }
    out
}

/// True for one pair of brackets around entries separated by spaces, commas and
/// semicolons: MATLAB's way of writing a matrix, `[1 2; 3 4]`.
fn is_matlab(text: &str) -> bool {
    let text = text.trim();
    let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return false;
    };
    !inner.contains(['[', ']'])
        && (inner.contains(';') || inner.trim().contains(char::is_whitespace))
}

/// A MATLAB-style matrix: rows separated by `;` (or new lines), entries by spaces or
/// commas. One row without `;` is a list, a column vector, as `[1,2,3]` is in JSON;
/// `[1; 2; 3]` is the same column.
fn from_matlab(text: &str) -> Result<DMatrix<f64>, ValueError> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or(ValueError::NotAValue)?;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let parts: Vec<&str> = inner.split([';', '\n']).collect();
    for (i, part) in parts.iter().enumerate() {
        let entries: Vec<&str> = part
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            // MATLAB allows a `;` after the last row.
            if i + 1 == parts.len() && i > 0 {
                continue;
            }
            return Err(ValueError::Empty);
        }
        let row = entries
            .iter()
            .map(|e| match e.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                Ok(_) => Err(ValueError::NotFinite),
                Err(_) => Err(ValueError::NotAValue),
            })
            .collect::<Result<Vec<f64>, _>>()?;
        if let Some(first) = rows.first()
            && first.len() != row.len()
        {
            return Err(ValueError::Ragged {
                row: rows.len() + 1,
                len: row.len(),
                first: first.len(),
            });
        }
        rows.push(row);
    }
    let (r, c) = (rows.len(), rows.first().map_or(0, Vec::len));
    let flat: Vec<f64> = rows.into_iter().flatten().collect();
    Ok(if r == 1 {
        DMatrix::from_column_slice(c, 1, &flat)
    } else {
        DMatrix::from_row_slice(r, c, &flat)
    })
}

/// A JSON number as a finite f64.
fn number(v: &Value) -> Result<Option<f64>, ValueError> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(ValueError::NotFinite),
        },
        _ => Ok(None),
    }
}

/// A parsed JSON value as a matrix.
fn from_json(v: &Value) -> Result<DMatrix<f64>, ValueError> {
    if let Some(x) = number(v)? {
        return Ok(DMatrix::from_element(1, 1, x));
    }
    let Value::Array(items) = v else {
        return Err(ValueError::NotAValue);
    };
    if items.is_empty() {
        return Err(ValueError::Empty);
    }
    let numbers = items.iter().filter(|i| i.is_number()).count();
    let lists = items.iter().filter(|i| i.is_array()).count();
    if numbers == items.len() {
        let column = items
            .iter()
            .map(|i| number(i)?.ok_or(ValueError::NotAValue))
            .collect::<Result<Vec<f64>, _>>()?;
        return Ok(DMatrix::from_column_slice(column.len(), 1, &column));
    }
    if lists != items.len() {
        return Err(if numbers + lists == items.len() {
            ValueError::Mixed
        } else {
            ValueError::NotAValue
        });
    }
    let mut flat = Vec::new();
    let mut first = 0;
    for (i, row) in items.iter().enumerate() {
        let Value::Array(row) = row else {
            return Err(ValueError::NotAValue);
        };
        if row.is_empty() {
            return Err(ValueError::Empty);
        }
        if i == 0 {
            first = row.len();
        } else if row.len() != first {
            return Err(ValueError::Ragged {
                row: i + 1,
                len: row.len(),
                first,
            });
        }
        for entry in row {
            match number(entry)? {
                Some(x) => flat.push(x),
                None if entry.is_array() => return Err(ValueError::TooDeep),
                None => return Err(ValueError::NotAValue),
            }
        }
    }
    Ok(DMatrix::from_row_slice(items.len(), first, &flat))
}

/// Reads a NumPy `.npy` file's bytes; the error is the reason, as a sentence.
fn parse_npy(bytes: &[u8]) -> Result<DMatrix<f64>, String> {
    let npy = NpyFile::new(bytes).map_err(|e| format!("not a NumPy array file ({e})"))?;
    let to_usize = |n: u64| usize::try_from(n).map_err(|_| "the array is too large".to_string());
    let (rows, cols) = match npy.shape() {
        [] => (1, 1),
        [n] => (to_usize(*n)?, 1),
        [r, c] => (to_usize(*r)?, to_usize(*c)?),
        more => {
            return Err(format!(
                "the array has {} dimensions; a value has at most 2",
                more.len()
            ));
        }
    };
    let order = npy.order();
    let DType::Plain(ts) = npy.dtype() else {
        return Err("structured NumPy arrays are not supported".to_string());
    };
    let total = rows
        .checked_mul(cols)
        .ok_or_else(|| "the array is too large".to_string())?;
    if total == 0 {
        return Err(ValueError::Empty.to_string());
    }
    let item = ts.num_bytes().unwrap_or(usize::MAX);
    if total.checked_mul(item).is_none_or(|n| n > bytes.len()) {
        return Err("the file is shorter than its header says".to_string());
    }
    let read_err = |e: std::io::Error| format!("the data cannot be read ({e})");
    let data: Vec<f64> = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(read_err)?,
        (TypeChar::Float, 4) => convert(npy.into_vec::<f32>(), read_err)?,
        (TypeChar::Int, 8) => npy
            .into_vec::<i64>()
            .map_err(read_err)?
            .into_iter()
            .map(|x| x as f64)
            .collect(),
        (TypeChar::Int, 4) => convert(npy.into_vec::<i32>(), read_err)?,
        (TypeChar::Int, 2) => convert(npy.into_vec::<i16>(), read_err)?,
        (TypeChar::Int, 1) => convert(npy.into_vec::<i8>(), read_err)?,
        (TypeChar::Uint, 8) => npy
            .into_vec::<u64>()
            .map_err(read_err)?
            .into_iter()
            .map(|x| x as f64)
            .collect(),
        (TypeChar::Uint, 4) => convert(npy.into_vec::<u32>(), read_err)?,
        (TypeChar::Uint, 2) => convert(npy.into_vec::<u16>(), read_err)?,
        (TypeChar::Uint, 1) => convert(npy.into_vec::<u8>(), read_err)?,
        (TypeChar::Bool, 1) => convert(npy.into_vec::<bool>(), read_err)?,
        _ => {
            return Err(format!(
                "the NumPy dtype {ts} is not supported (use float64, float32, int64 or int32)"
            ));
        }
    };
    if data.len() != total {
        return Err("the file is shorter than its header says".to_string());
    }
    if data.iter().any(|x| !x.is_finite()) {
        return Err(ValueError::NotFinite.to_string());
    }
    Ok(match order {
        Order::C => DMatrix::from_row_slice(rows, cols, &data),
        Order::Fortran => DMatrix::from_column_slice(rows, cols, &data),
    })
}

/// Widens numbers read from a file to f64.
fn convert<T: Into<f64>>(
    read: std::io::Result<Vec<T>>,
    read_err: impl Fn(std::io::Error) -> String,
) -> Result<Vec<f64>, String> {
    Ok(read
        .map_err(read_err)?
        .into_iter()
        .map(Into::into)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use npyz::WriterBuilder;

    fn m(r: usize, c: usize, rows: &[f64]) -> DMatrix<f64> {
        DMatrix::from_row_slice(r, c, rows)
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        std::env::temp_dir().join(format!(
            "jacob-values-{}-{nanos}-{name}",
            std::process::id()
        ))
    }

    #[test]
    fn matlab_matrices() {
        let v = |t: &str| parse_value(t);
        assert_eq!(v("[1 2; 3 4]"), Ok(m(2, 2, &[1.0, 2.0, 3.0, 4.0])));
        assert_eq!(v("[1, 2; 3, 4]"), Ok(m(2, 2, &[1.0, 2.0, 3.0, 4.0])));
        assert_eq!(
            v(" [1 -2.5e-1; .5 +4;] "),
            Ok(m(2, 2, &[1.0, -0.25, 0.5, 4.0]))
        );
        // One row is a list, a column, as in JSON; so is a column written with `;`.
        assert_eq!(v("[1 2 3]"), Ok(m(3, 1, &[1.0, 2.0, 3.0])));
        assert_eq!(v("[1;2;3]"), Ok(m(3, 1, &[1.0, 2.0, 3.0])));
        assert_eq!(v("[1 2 3]"), v("[1,2,3]"));
        assert_eq!(
            v("[1 2; 3]"),
            Err(ValueError::Ragged {
                row: 2,
                len: 1,
                first: 2
            })
        );
        assert_eq!(v("[1 2; nan 3]"), Err(ValueError::NotFinite));
        assert_eq!(v("[1 x]"), Err(ValueError::NotAValue));
        assert_eq!(v("[ ; ]"), Err(ValueError::Empty));
        assert_eq!(v("[1 2; [3 4]]"), Err(ValueError::NotAValue));
    }

    #[test]
    fn numbers_vectors_matrices() {
        assert_eq!(parse_value("2.5"), Ok(m(1, 1, &[2.5])));
        assert_eq!(parse_value(" -3 "), Ok(m(1, 1, &[-3.])));
        assert_eq!(parse_value("1e-3"), Ok(m(1, 1, &[0.001])));
        assert_eq!(parse_value("[1,2,3]"), Ok(m(3, 1, &[1., 2., 3.])));
        assert_eq!(parse_value("[[1,2],[3,4]]"), Ok(m(2, 2, &[1., 2., 3., 4.])));
        assert_eq!(parse_value("[[1, 2, 3]]"), Ok(m(1, 3, &[1., 2., 3.])));
        assert_eq!(parse_value("[[1], [2]]"), Ok(m(2, 1, &[1., 2.])));
    }

    #[test]
    fn lenient_number_spellings() {
        assert_eq!(parse_value(".5"), Ok(m(1, 1, &[0.5])));
        assert_eq!(
            parse_value("[-.5, 2., +3, 1e+2]"),
            Ok(m(4, 1, &[-0.5, 2., 3., 100.]))
        );
        assert_eq!(parse_value("1.e2"), Ok(m(1, 1, &[100.])));
        assert_eq!(parse_value("."), Err(ValueError::NotAValue));
        assert_eq!(parse_value("1+2"), Err(ValueError::NotAValue));
        assert_eq!(parse_value("++2"), Err(ValueError::NotAValue));
    }

    #[test]
    fn bad_values() {
        assert_eq!(
            parse_value("[[1,2],[3,4,5]]").unwrap_err().to_string(),
            "the rows of the matrix have different lengths (row 2 has 3 entries, row 1 has 2)"
        );
        assert_eq!(
            parse_value("[[1,2],[3]]").unwrap_err().to_string(),
            "the rows of the matrix have different lengths (row 2 has 1 entry, row 1 has 2)"
        );
        assert_eq!(
            parse_value("abc").unwrap_err().to_string(),
            "expected a number, a list of numbers, or a list of rows ([[1,2],[3,4]] or [1 2; 3 4])"
        );
        assert_eq!(parse_value(""), Err(ValueError::NotAValue));
        assert_eq!(parse_value("[1,2"), Err(ValueError::NotAValue));
        assert_eq!(parse_value("\"1\""), Err(ValueError::NotAValue));
        assert_eq!(parse_value("{\"a\": 1}"), Err(ValueError::NotAValue));
        assert_eq!(parse_value("[1, \"a\"]"), Err(ValueError::NotAValue));
        assert_eq!(parse_value("[]"), Err(ValueError::Empty));
        assert_eq!(parse_value("[[]]"), Err(ValueError::Empty));
        assert_eq!(parse_value("[1, [2]]"), Err(ValueError::Mixed));
        assert_eq!(parse_value("[[[1]]]"), Err(ValueError::TooDeep));
        assert_eq!(parse_value("[[1, [2]]]"), Err(ValueError::TooDeep));
        assert_eq!(parse_value(&"[".repeat(10_000)), Err(ValueError::TooDeep));
        assert_eq!(parse_value("NaN"), Err(ValueError::NotFinite));
        assert_eq!(parse_value("[1, Infinity]"), Err(ValueError::NotFinite));
        assert_eq!(parse_value("1e400"), Err(ValueError::NotFinite));
    }

    #[test]
    fn json_file() {
        let path = temp_path("m.json");
        std::fs::write(&path, "[[1, 2],\n [3, 4]]\n").unwrap();
        let arg = format!("@{}", path.display());
        assert_eq!(parse_value(&arg), Ok(m(2, 2, &[1., 2., 3., 4.])));
        std::fs::write(&path, "[[1, 2], [3]]").unwrap();
        let err = parse_value(&arg).unwrap_err().to_string();
        assert!(err.starts_with("cannot read "), "{err}");
        assert!(err.ends_with("(row 2 has 1 entry, row 1 has 2)"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn missing_file() {
        assert_eq!(
            parse_value("@/nonexistent/jacob/data.npy")
                .unwrap_err()
                .to_string(),
            "cannot read /nonexistent/jacob/data.npy: No such file or directory"
        );
        assert!(matches!(parse_value("@"), Err(ValueError::File { .. })));
    }

    #[test]
    fn npy_files() {
        // A 2×3 float64 matrix in C order.
        let path = temp_path("c.npy");
        let mut file = std::fs::File::create(&path).unwrap();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[2, 3])
            .writer(&mut file)
            .begin_nd()
            .unwrap();
        w.extend([1.0f64, 2., 3., 4., 5., 6.]).unwrap();
        w.finish().unwrap();
        let arg = format!("@{}", path.display());
        assert_eq!(parse_value(&arg), Ok(m(2, 3, &[1., 2., 3., 4., 5., 6.])));

        // The same numbers in Fortran order, as int32: column-major.
        let mut file = std::fs::File::create(&path).unwrap();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[2, 3])
            .order(Order::Fortran)
            .writer(&mut file)
            .begin_nd()
            .unwrap();
        w.extend([1i32, 2, 3, 4, 5, 6]).unwrap();
        w.finish().unwrap();
        assert_eq!(parse_value(&arg), Ok(m(2, 3, &[1., 3., 5., 2., 4., 6.])));

        // 1-D float32 → column; 0-D i64 → scalar.
        let mut file = std::fs::File::create(&path).unwrap();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[3])
            .writer(&mut file)
            .begin_nd()
            .unwrap();
        w.extend([0.5f32, 1.5, 2.5]).unwrap();
        w.finish().unwrap();
        assert_eq!(parse_value(&arg), Ok(m(3, 1, &[0.5, 1.5, 2.5])));

        let mut file = std::fs::File::create(&path).unwrap();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[])
            .writer(&mut file)
            .begin_nd()
            .unwrap();
        w.push(&7i64).unwrap();
        w.finish().unwrap();
        assert_eq!(parse_value(&arg), Ok(m(1, 1, &[7.])));

        // Three dimensions are not a value.
        let mut file = std::fs::File::create(&path).unwrap();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[1, 1, 2])
            .writer(&mut file)
            .begin_nd()
            .unwrap();
        w.extend([1.0f64, 2.0]).unwrap();
        w.finish().unwrap();
        let err = parse_value(&arg).unwrap_err().to_string();
        assert!(
            err.ends_with("the array has 3 dimensions; a value has at most 2"),
            "{err}"
        );

        // A truncated file is an error, not a panic.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        assert!(matches!(parse_value(&arg), Err(ValueError::File { .. })));
        std::fs::write(&path, b"\x93NUMPY garbage").unwrap();
        assert!(matches!(parse_value(&arg), Err(ValueError::File { .. })));
        std::fs::remove_file(&path).unwrap();
    }
}

//! The README stays true: every `$ jacob …` line in a ```console block is run, and its
//! standard output and error must be the lines printed under it (up to the next `$`).
//! A trailing `; echo "exit $?"` checks the exit code too.

mod common;
use common::jacob;

const README: &str = include_str!("../README.md");

/// Splits a shell command line into words: double and single quotes group, nothing
/// else is special.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, ' ') => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

/// (command line, expected output lines) for every example in the README.
fn examples() -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_console = false;
    for line in README.lines() {
        if line.starts_with("```") {
            in_console = line == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push((cmd.to_string(), Vec::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push(line.to_string());
        }
    }
    out
}

#[test]
fn every_console_example_prints_what_the_readme_shows() {
    let examples = examples();
    assert!(examples.len() >= 15, "too few examples found");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (cmd, expected) in examples {
        let (cmd, want_exit) = match cmd.split_once("; echo \"exit $?\"") {
            Some((c, _)) => (c.to_string(), true),
            None => (cmd.clone(), false),
        };
        let args = words(&cmd);
        if args.first().map(String::as_str) != Some("jacob") {
            continue; // set-up commands (`cargo …`)
        }
        let argv: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let (code, out, err) = jacob(&argv);
        let mut got: Vec<String> = out.lines().map(String::from).collect();
        got.extend(err.lines().map(String::from));
        if want_exit {
            got.push(format!("exit {code}"));
        } else if !matches!(code, 0 | 1) {
            // A shown error: stderr is part of the expected lines.
            assert!(err.starts_with("error:"), "{cmd}: {err}");
        }
        if got != expected {
            wrong.push(format!(
                "README example `{cmd}` prints\n{}\nbut the README shows\n{}",
                got.join("\n"),
                expected.join("\n")
            ));
        }
        checked += 1;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert!(checked >= 15, "only {checked} README examples ran");
}

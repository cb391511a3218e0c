//! check (being written).
use crate::cli::{CheckArgs, Config};
use crate::error::Error;
use crate::run::Answer;
/// Checks a derivative.
pub fn check(_a: &CheckArgs, _c: &Config, _t: &str) -> Result<Answer, Error> {
    Err(Error::Unsupported("check".into()))
}

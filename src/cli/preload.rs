//! `--preload FILE.js` (repeatable, in order): libraries evaluated into the snapshot the
//! handler starts from, for `run` and for `resume` (a suspension is only ever resumed on the
//! image it was made on, libraries included).

use std::path::PathBuf;

use nexus::Library;

use super::{UsageError, input};

#[derive(clap::Args)]
pub struct PreloadArgs {
    /// A script whose globals the handler sees, evaluated once into the snapshot (repeatable,
    /// in order). Errors name it by the path as given.
    #[arg(long = "preload", value_name = "FILE.js")]
    pub files: Vec<PathBuf>,
}

impl PreloadArgs {
    pub fn libraries(&self) -> Result<Vec<Library>, UsageError> {
        self.files.iter().map(|file| Ok(Library::new(file.display().to_string(), input::read(file)?))).collect()
    }
}

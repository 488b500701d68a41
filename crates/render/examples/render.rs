//! Renders a kustomization directory and prints the YAML, like
//! `kubectl kustomize DIR`: a development aid for comparing with kubectl.
//!
//! ```sh
//! cargo run -p pilothouse-render --example render -- DIR [--load-restrictor LoadRestrictionsNone]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use pilothouse_render::{LoadRestrictions, RenderOptions, render_dir, to_yaml};

fn main() -> ExitCode {
    let mut dir = None;
    let mut options = RenderOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--load-restrictor" => match args.next().as_deref() {
                Some("LoadRestrictionsNone") => options.load_restrictions = LoadRestrictions::None,
                Some("LoadRestrictionsRootOnly") => {
                    options.load_restrictions = LoadRestrictions::RootOnly
                }
                other => {
                    eprintln!("unknown load restrictor {other:?}");
                    return ExitCode::from(2);
                }
            },
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: render DIR [--load-restrictor LoadRestrictionsNone]");
        return ExitCode::from(2);
    };
    match render_dir(&dir, &options) {
        Ok(objects) => {
            print!("{}", to_yaml(&objects));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

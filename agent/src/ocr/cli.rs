//! `branchd ocr FILE [--kind id-card|licence|auto] [--json]`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::engine::Engine;
use super::fields::Requested;

/// Arguments of `branchd ocr`.
#[derive(Debug, Args)]
pub struct OcrArgs {
    /// The photo (JPEG or PNG).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Which document: id-card, licence or auto.
    #[arg(long, default_value = "auto", value_parser = clap::builder::ValueParser::new(parse_kind))]
    kind: Requested,
    /// Print the result as JSON (the HTTP API's shape).
    #[arg(long)]
    json: bool,
    /// The models directory (default: the config's `models.dir`, else $BRANCHD_MODELS).
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,
    /// Take `models.dir` and `ocr.threads` from this config file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check an ID card against its chip text, given as JSON with the answer's field keys
    /// (name, gender, nation, birth_date, address, id_number; for the back also
    /// issuing_authority, valid_from, valid_to).
    #[arg(long, value_name = "FILE")]
    chip: Option<PathBuf>,
}

fn parse_kind(s: &str) -> Result<Requested, String> {
    s.parse()
}

/// Run `branchd ocr`.
#[allow(clippy::print_stdout)]
pub fn run(args: OcrArgs) -> anyhow::Result<ExitCode> {
    let (mut dir, mut threads) = (crate::config::default_models_dir(), 2);
    if let Some(c) = &args.config {
        match crate::config::Config::load(c) {
            Ok(cfg) => {
                dir = cfg.models.dir.clone();
                threads = cfg.ocr.threads;
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "{}: {e}", c.display());
                return Ok(ExitCode::from(crate::config::EX_USAGE));
            }
        }
    }
    if let Some(d) = args.models {
        dir = d;
    }
    let chip = match &args.chip {
        None => None,
        Some(path) => {
            let text =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let file: super::chip::ChipFile = serde_json::from_slice(&text)
                .with_context(|| format!("{}: not chip text", path.display()))?;
            let card = file
                .into_card()
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(card)
        }
    };
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    // refuse a bad image before loading the models
    crate::image::sniff(&bytes).with_context(|| args.file.display().to_string())?;
    let mut engine = Engine::load(&dir, threads)?;
    let mut r = super::recognise(&mut engine, &bytes, args.kind)
        .with_context(|| args.file.display().to_string())?;
    if let Some(card) = &chip {
        r.chip_check = Some(
            super::chip::check(&r, card, "file", None)
                .with_context(|| args.file.display().to_string())?,
        );
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let kind = serde_json::to_value(r.kind)?;
    let side = r
        .side
        .map(|s| {
            format!(
                " ({})",
                serde_json::to_value(s)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("")
            )
        })
        .unwrap_or_default();
    writeln!(out, "{}{side}", kind.as_str().unwrap_or(""))?;
    for (k, f) in &r.fields {
        let check = match f.valid {
            Some(true) => "  ✔ valid".to_string(),
            Some(false) => match &f.suggestion {
                Some(s) => format!("  ✘ invalid (did you mean {s}?)"),
                None => "  ✘ invalid".to_string(),
            },
            None => String::new(),
        };
        writeln!(out, "  {k:<20} {}  [{:.2}]{check}", f.value, f.confidence)?;
    }
    if let Some(c) = &r.chip_check {
        let verdicts: Vec<String> = c
            .fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k} {}",
                    serde_json::to_value(v)
                        .unwrap_or_default()
                        .as_str()
                        .unwrap_or("")
                )
            })
            .collect();
        writeln!(
            out,
            "chip check: {} ({})",
            if c.all_match { "all match" } else { "CHECK" },
            verdicts.join(", ")
        )?;
    }
    writeln!(
        out,
        "{} lines, {:.0} ms (decode {:.0}, detect {:.0}, classify {:.0}, recognise {:.0})",
        r.lines.len(),
        r.timing_ms.total,
        r.timing_ms.decode,
        r.timing_ms.detect,
        r.timing_ms.classify,
        r.timing_ms.recognize
    )?;
    Ok(ExitCode::SUCCESS)
}

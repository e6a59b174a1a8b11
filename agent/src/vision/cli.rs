//! `branchd faces FILE [--json]` and `branchd vip enroll`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::detect::Face;
use super::engine::{Detector, FaceEngine, ModelNames, Timing};
use crate::config::faces::FacesConfig;
use crate::store::Store;
use crate::vips::{self, LocalEnrolment};

/// Arguments of `branchd faces`.
#[derive(Debug, Args)]
pub struct FacesArgs {
    /// The photo (JPEG or PNG).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// The models directory (default: the config's `models.dir`, else $BRANCHD_MODELS).
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,
    /// Take `models.dir` and `[faces]` from this config file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The answer of `branchd faces --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FacesOutput {
    /// Faces, best first.
    pub faces: Vec<Face>,
    /// Per-stage milliseconds.
    pub timing_ms: Timing,
}

#[allow(clippy::print_stderr)]
fn settings(
    config: Option<&Path>,
    models: Option<PathBuf>,
) -> Result<(PathBuf, FacesConfig), ExitCode> {
    let (mut dir, mut faces) = (crate::config::default_models_dir(), FacesConfig::default());
    if let Some(c) = config {
        match crate::config::Config::load(c) {
            Ok(cfg) => {
                dir = cfg.models.dir.clone();
                faces = cfg.faces.clone();
            }
            Err(e) => {
                eprintln!("{}: {e}", c.display());
                return Err(ExitCode::from(crate::config::EX_USAGE));
            }
        }
    }
    if let Some(d) = models {
        dir = d;
    }
    Ok((dir, faces))
}

/// Run `branchd faces`.
pub fn run(args: FacesArgs) -> anyhow::Result<ExitCode> {
    let (dir, faces_cfg) = match settings(args.config.as_deref(), args.models) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    // refuse a bad image before loading the models
    crate::image::sniff(&bytes).with_context(|| args.file.display().to_string())?;
    let mut det = Detector::load(&dir, &faces_cfg.detector, faces_cfg.threads)?;
    det.set_max_side(faces_cfg.detect_max_side);
    let (faces, timing) = det
        .detect_bytes(&bytes)
        .with_context(|| args.file.display().to_string())?;
    let round = |v: f64| (v * 10.0).round() / 10.0;
    let out = FacesOutput {
        faces: faces.iter().map(Face::rounded).collect(),
        timing_ms: Timing {
            decode: round(timing.decode),
            detect: round(timing.detect),
            total: round(timing.total),
        },
    };
    let mut o = std::io::stdout().lock();
    if args.json {
        writeln!(o, "{}", serde_json::to_string(&out)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(o, "{} face(s)", out.faces.len())?;
    for (i, f) in out.faces.iter().enumerate() {
        let [x, y, w, h] = f.bbox;
        writeln!(
            o,
            "  {}: box x={x} y={y} w={w} h={h}  score {:.3}",
            i + 1,
            f.score
        )?;
    }
    writeln!(
        o,
        "{:.0} ms (decode {:.0}, detect {:.0})",
        out.timing_ms.total, out.timing_ms.decode, out.timing_ms.detect
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `branchd vip …`
#[derive(Debug, Subcommand)]
pub enum VipCommand {
    /// Enrol a VIP customer from a photo on this box (the photo itself is not kept).
    Enroll(EnrollArgs),
}

/// Arguments of `branchd vip enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// Head office's customer id.
    #[arg(value_name = "CUSTOMER_ID")]
    customer_id: String,
    /// A photo showing exactly one face (JPEG or PNG).
    #[arg(long, value_name = "FILE")]
    photo: PathBuf,
    /// The customer's name.
    #[arg(long)]
    name: String,
    /// Customer level, e.g. gold.
    #[arg(long)]
    level: String,
    /// A profile tag (repeat for several), e.g. birthday.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// The customer's relationship manager.
    #[arg(long, value_name = "NAME")]
    relationship_manager: Option<String>,
    /// The customer consented to face recognition (required).
    #[arg(long, required = true)]
    consent: bool,
    /// The daemon's data directory.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "config",
        required_unless_present = "config"
    )]
    data_dir: Option<PathBuf>,
    /// The daemon's config file (its data dir, models and `[faces]` are used).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The models directory.
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,
}

/// Run `branchd vip …`; `open_store` opens the daemon's database in a data dir.
#[allow(clippy::print_stderr)]
pub fn run_vip(
    cmd: VipCommand,
    open_store: impl FnOnce(&std::path::Path) -> anyhow::Result<Store>,
) -> anyhow::Result<ExitCode> {
    let VipCommand::Enroll(a) = cmd;
    let bad = |m: String| {
        eprintln!("error: {m}");
        Ok(ExitCode::from(crate::config::EX_USAGE))
    };
    if a.customer_id.trim().is_empty() || a.customer_id.len() > 64 {
        return bad("the customer id must be 1 to 64 characters".into());
    }
    if a.name.trim().is_empty() || a.level.trim().is_empty() {
        return bad("--name and --level must not be empty".into());
    }
    let (dir, faces_cfg) = match settings(a.config.as_deref(), a.models.clone()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let data_dir = match (&a.data_dir, &a.config) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => match crate::config::Config::load(c) {
            Ok(cfg) => cfg.branch.data_dir,
            Err(e) => return bad(format!("{}: {e}", c.display())),
        },
        (None, None) => return bad("give --data-dir or --config".into()),
    };
    let bytes =
        std::fs::read(&a.photo).with_context(|| format!("cannot read {}", a.photo.display()))?;
    crate::image::sniff(&bytes).with_context(|| a.photo.display().to_string())?;
    let names = ModelNames::from(&faces_cfg);
    let mut engine = FaceEngine::load(&dir, &names, faces_cfg.threads)?;
    let embedding = engine
        .enrolment_embedding(&bytes)
        .with_context(|| a.photo.display().to_string())?;
    let model_id = engine.embedder.spec.model_id.clone();
    let store = open_store(&data_dir)?;
    let e = LocalEnrolment {
        customer_id: a.customer_id.clone(),
        name: a.name,
        level: a.level,
        tags: a.tags,
        relationship_manager: a.relationship_manager,
    };
    let mid = model_id.clone();
    let r = store.write_blocking(move |tx| vips::enrol_local(tx, &e, &embedding, &mid, "cli"));
    store.close();
    r?;
    writeln!(
        std::io::stdout().lock(),
        "enrolled {} ({model_id})",
        a.customer_id
    )?;
    Ok(ExitCode::SUCCESS)
}

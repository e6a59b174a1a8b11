//! The model manifest (`models/manifest.toml`, built into the binary) and the checked
//! loading of model files: a file whose SHA-256 differs from the manifest is refused. One
//! ONNX Runtime loader and session builder for OCR and faces; the face models' facts in
//! [`faces`].

pub mod faces;
pub mod onnx;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use sha2::{Digest, Sha256};

/// The manifest the binary was built with.
pub const MANIFEST: &str = include_str!("../../../models/manifest.toml");

/// One file listed in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// Unique name (`ocr_det`, …).
    pub name: String,
    /// What the daemon uses it for.
    pub role: String,
    /// Path inside the models directory.
    pub file: String,
    /// Expected SHA-256, lower-case hex.
    pub sha256: String,
    /// Native libraries only: the CPU architecture.
    pub arch: Option<String>,
}

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The manifest has no entry for this role (and architecture).
    #[error("the model manifest lists no {0}")]
    NotInManifest(String),
    /// The manifest itself cannot be read.
    #[error("the model manifest is malformed: {0}")]
    Manifest(String),
    /// The file is missing or unreadable.
    #[error("cannot read model file {path}: {source} (fetch the models with models/fetch.py)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's hash differs from the manifest.
    #[error("model file {path} refused: sha256 mismatch (expected {expected}, actual {actual})")]
    Hash {
        /// The file.
        path: PathBuf,
        /// From the manifest.
        expected: String,
        /// Of the file on disk.
        actual: String,
    },
    /// ONNX Runtime refused the library or a model.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
}

/// Every entry of the built-in manifest.
pub fn manifest() -> Result<Vec<ModelEntry>, ModelError> {
    parse_manifest(MANIFEST)
}

/// Parse a manifest's `[[models]]` entries.
pub fn parse_manifest(text: &str) -> Result<Vec<ModelEntry>, ModelError> {
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| ModelError::Manifest(e.to_string()))?;
    let models = doc
        .get("models")
        .and_then(|m| m.as_array_of_tables())
        .ok_or_else(|| ModelError::Manifest("no [[models]] entries".into()))?;
    let mut out = Vec::new();
    for t in models.iter() {
        let get = |k: &str| -> Result<String, ModelError> {
            t.get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| ModelError::Manifest(format!("an entry has no string `{k}`")))
        };
        out.push(ModelEntry {
            name: get("name")?,
            role: get("role")?,
            file: get("file")?,
            sha256: get("sha256")?.to_ascii_lowercase(),
            arch: t.get("arch").and_then(|v| v.as_str()).map(str::to_string),
        });
    }
    Ok(out)
}

/// The entry for `role` (for native libraries, the one built for this CPU).
pub fn entry(entries: &[ModelEntry], role: &str) -> Result<ModelEntry, ModelError> {
    entries
        .iter()
        .find(|e| {
            e.role == role
                && e.arch
                    .as_deref()
                    .is_none_or(|a| a == std::env::consts::ARCH)
        })
        .cloned()
        .ok_or_else(|| ModelError::NotInManifest(format!("{role} for {}", std::env::consts::ARCH)))
}

/// SHA-256 of bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Read a model file and check its hash against the manifest entry.
pub fn read_verified(dir: &Path, e: &ModelEntry) -> Result<Vec<u8>, ModelError> {
    let path = dir.join(&e.file);
    let bytes = std::fs::read(&path).map_err(|source| ModelError::Read {
        path: path.clone(),
        source,
    })?;
    let actual = sha256_hex(&bytes);
    if actual != e.sha256 {
        return Err(ModelError::Hash {
            path,
            expected: e.sha256.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// A file head office sent to replace a manifest entry (`model.update`): where it is and
/// the SHA-256 it was verified and self-tested with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// The file (on the data disk).
    pub path: PathBuf,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

#[derive(Debug, Default)]
struct Active {
    generation: u64,
    replaced: BTreeMap<String, Replacement>,
}

/// Which file each model is loaded from: the shipped file of the manifest in the models
/// directory, or a replacement head office sent. Engines remember the [`generation`] they
/// were loaded at and reload between two inferences when it changes, so a model is swapped
/// without an inference ever seeing half of it.
///
/// [`generation`]: ModelSet::generation
#[derive(Debug, Clone)]
pub struct ModelSet {
    dir: PathBuf,
    active: Arc<RwLock<Active>>,
}

impl ModelSet {
    /// The shipped models of `dir`, nothing replaced.
    pub fn shipped(dir: &Path) -> ModelSet {
        ModelSet {
            dir: dir.to_path_buf(),
            active: Arc::default(),
        }
    }

    /// The models directory (the shipped files and the ONNX Runtime library).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Changes whenever a model is replaced or restored.
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Active> {
        self.active.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The replacement of manifest entry `name`, if any.
    pub fn replacement(&self, name: &str) -> Option<Replacement> {
        self.read().replaced.get(name).cloned()
    }

    /// Replace entry `name` (`None`: back to the shipped file); engines reload before their
    /// next inference.
    pub fn set(&self, name: &str, r: Option<Replacement>) {
        let mut a = self.active.write().unwrap_or_else(|p| p.into_inner());
        match r {
            Some(r) => a.replaced.insert(name.to_string(), r),
            None => a.replaced.remove(name),
        };
        a.generation += 1;
    }

    /// A detached copy with `name` replaced by `r`: what a self-test loads, without
    /// touching the live set.
    pub fn candidate(&self, name: &str, r: Option<Replacement>) -> ModelSet {
        let a = self.read();
        let mut replaced = a.replaced.clone();
        match r {
            Some(r) => replaced.insert(name.to_string(), r),
            None => replaced.remove(name),
        };
        ModelSet {
            dir: self.dir.clone(),
            active: Arc::new(RwLock::new(Active {
                generation: a.generation,
                replaced,
            })),
        }
    }

    /// The entry as it is loaded now: the replacement's file and hash, or the manifest's.
    pub fn resolve(&self, e: &ModelEntry) -> (PathBuf, ModelEntry) {
        match self.replacement(&e.name) {
            Some(r) => {
                let mut e = e.clone();
                e.sha256 = r.sha256;
                let dir = r.path.parent().map(Path::to_path_buf).unwrap_or_default();
                e.file = r
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (dir, e)
            }
            None => (self.dir.clone(), e.clone()),
        }
    }

    /// Read the file entry `e` is loaded from, checking its SHA-256.
    pub fn read_verified(&self, e: &ModelEntry) -> Result<Vec<u8>, ModelError> {
        let (dir, e) = self.resolve(e);
        read_verified(&dir, &e)
    }
}

/// How a model's input shapes vary from one run to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shapes {
    /// The same shape run after run (the face models on the camera's frames; the detector's
    /// other inputs are at most its longest side squared): ONNX Runtime's memory arena and
    /// memory pattern serve every run from what the first one allocated.
    Fixed,
    /// A new shape almost every run (OCR: each photo's size, each line's width): the arena
    /// would keep the largest of every size it has seen, and a memory pattern per shape,
    /// for good; so tensors are allocated for each run and given back after it.
    Varying,
}

/// An ONNX Runtime session for a verified model: full graph optimisation, `threads` for
/// each operator, one operator at a time (the caller's pool gives the parallelism).
pub fn session(
    bytes: &[u8],
    threads: usize,
    shapes: Shapes,
) -> Result<ort::session::Session, ModelError> {
    use ort::execution_providers::CPUExecutionProvider;
    use ort::session::builder::GraphOptimizationLevel;
    let rt = |e: ort::Error| ModelError::Runtime(e.to_string());
    let fixed = shapes == Shapes::Fixed;
    ort::session::Session::builder()
        .map_err(rt)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(rt)?
        .with_intra_threads(threads)
        .map_err(rt)?
        .with_inter_threads(1)
        .map_err(rt)?
        // Idle workers block instead of spinning: the sessions of a box (detector, embedder,
        // OCR's three) run one after another, and a pool spinning after its run takes the
        // cores from the next session's.
        .with_intra_op_spinning(false)
        .map_err(rt)?
        .with_memory_pattern(fixed)
        .map_err(rt)?
        .with_execution_providers([CPUExecutionProvider::default()
            .with_arena_allocator(fixed)
            .build()])
        .map_err(rt)?
        .commit_from_memory(bytes)
        .map_err(rt)
}

static RUNTIME: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Load the ONNX Runtime library from the models directory (once per process), after
/// checking its hash. Later calls with another directory reuse the first library.
pub fn init_runtime(dir: &Path, entries: &[ModelEntry]) -> Result<(), ModelError> {
    let r = RUNTIME.get_or_init(|| {
        let e = entry(entries, "onnxruntime").map_err(|e| e.to_string())?;
        read_verified(dir, &e).map_err(|e| e.to_string())?;
        let path = dir.join(&e.file);
        ort::init_from(path.to_string_lossy().to_string())
            .with_name("branchd-ocr")
            .commit()
            .map_err(|err| format!("cannot load {}: {err}", path.display()))?;
        Ok(path)
    });
    r.as_ref()
        .map(|_| ())
        .map_err(|e| ModelError::Runtime(e.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_manifest_lists_the_three_ocr_models_and_the_runtime() {
        let m = manifest().unwrap();
        for role in ["ocr_det", "ocr_rec", "ocr_cls", "onnxruntime"] {
            let e = entry(&m, role).unwrap();
            assert_eq!(e.sha256.len(), 64, "{role}");
        }
    }

    #[test]
    fn a_model_whose_hash_differs_is_refused_naming_file_expected_and_actual() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest().unwrap();
        let det = entry(&m, "ocr_det").unwrap();
        std::fs::write(dir.path().join(&det.file), b"not the model").unwrap();
        let err = read_verified(dir.path(), &det).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&det.file), "{msg}");
        assert!(msg.contains(&det.sha256), "{msg}");
        assert!(msg.contains(&sha256_hex(b"not the model")), "{msg}");
        assert!(matches!(err, ModelError::Hash { .. }));
    }

    #[test]
    fn a_replacement_is_read_with_its_own_hash_and_bumps_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest().unwrap();
        let det = entry(&m, "ocr_det").unwrap();
        let set = ModelSet::shipped(dir.path());
        let g0 = set.generation();
        let new = dir.path().join("new-det.onnx");
        std::fs::write(&new, b"new det").unwrap();
        let r = Replacement {
            path: new.clone(),
            sha256: sha256_hex(b"new det"),
        };
        let candidate = set.candidate("ocr_det", Some(r.clone()));
        assert_eq!(candidate.read_verified(&det).unwrap(), b"new det");
        assert!(
            set.read_verified(&det).is_err(),
            "the live set still names the shipped file"
        );
        set.set("ocr_det", Some(r));
        assert_ne!(set.generation(), g0);
        assert_eq!(set.read_verified(&det).unwrap(), b"new det");
        std::fs::write(&new, b"tampered").unwrap();
        assert!(matches!(
            set.read_verified(&det),
            Err(ModelError::Hash { .. })
        ));
        set.set("ocr_det", None);
        assert_eq!(set.resolve(&det).1, det);
    }

    #[test]
    fn a_missing_model_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest().unwrap();
        let rec = entry(&m, "ocr_rec").unwrap();
        let msg = read_verified(dir.path(), &rec).unwrap_err().to_string();
        assert!(msg.contains(&rec.file), "{msg}");
    }
}

//! Finds `../shared/corpus` (or `$KADSIP_CORPUS`). Absent corpus: a failure
//! under CI (`CI=true`), a loud skip elsewhere.

use std::path::PathBuf;

pub fn corpus_dir(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("KADSIP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let dir = base.join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "corpus {} not found: these tests read ../shared/corpus beside the repository (or set KADSIP_CORPUS)",
        dir.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Reads `MANIFEST.tsv` rows (header line skipped) as columns.
#[allow(dead_code)]
pub fn manifest(dir: &std::path::Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("MANIFEST.tsv readable");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

//! Every checked-in corpus file and crash reproducer, and every hand-made seed, through the
//! fuzz entry points — on stable, in the normal `cargo test` run. A regression found by a
//! campaign and fixed stays fixed here without a nightly toolchain or cargo-fuzz.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files directly under `dir`, sorted (none if it does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_and_regression_runs_clean() {
    for (target, entry_point) in fuzzing::TARGETS {
        let corpus = files_in(&fuzz_dir().join("corpus").join(target));
        assert!(!corpus.is_empty(), "no corpus files for target {target}");
        let regressions = files_in(&fuzz_dir().join("regressions").join(target));
        for path in corpus.iter().chain(&regressions) {
            let bytes = std::fs::read(path).expect("readable corpus file");
            // A panic names the file, so the failing input is one command away.
            eprintln!("{}", path.display());
            entry_point(&bytes);
        }
    }
}

#[test]
fn every_seed_runs_clean() {
    for (target, name, bytes) in fuzzing::seeds::all() {
        let (_, entry_point) =
            fuzzing::TARGETS.iter().find(|(t, _)| *t == target).expect("seed of a known target");
        eprintln!("{target}/{name}");
        entry_point(&bytes);
    }
}

/// `cargo test -p fuzzing --test corpus_replay -- --ignored write_seed_corpus` (re)writes the
/// hand-made seeds into `fuzz/corpus/<target>/seed-*`.
#[test]
#[ignore = "writes into fuzz/corpus; run by hand after changing the seeds"]
fn write_seed_corpus() {
    for (target, name, bytes) in fuzzing::seeds::all() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        std::fs::write(dir.join(name), bytes).expect("seed written");
    }
}

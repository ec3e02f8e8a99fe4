//! Embeds the operator console (`engine/console/`) into the binary: writes
//! `$OUT_DIR/console_files.rs`, a table of (path under `/console/`, bytes) for every file, so
//! that `cargo build` alone serves it — no Node, no npm, no files beside the binary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    if root.is_dir() {
        collect(&root, &mut files);
    }
    files.sort();
    let mut table = String::from("&[\n");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let relative = file.strip_prefix(&root).expect("under the console dir");
        let name = relative.to_str().expect("console file names are UTF-8").replace('\\', "/");
        writeln!(table, "    ({name:?}, include_bytes!({:?}) as &[u8]),", file.display().to_string())
            .expect("writing to a String");
    }
    table.push(']');
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("console_files.rs");
    std::fs::write(out, table).expect("writing console_files.rs");
}

/// Every regular file under `dir`, skipping hidden entries, READMEs and symbolic links (no
/// loop, nothing from outside the folder). A name that is not UTF-8 stops the build.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("reading the console dir").flatten().collect();
    entries.sort_by_key(|entry| entry.path());
    for entry in entries {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_else(|| {
            panic!("console file names must be UTF-8: {}", path.display());
        });
        let Ok(kind) = entry.file_type() else { continue };
        if name.starts_with('.') || name == "README.md" || kind.is_symlink() {
            continue;
        }
        if kind.is_dir() {
            collect(&path, files);
        } else if kind.is_file() {
            files.push(path);
        }
    }
}

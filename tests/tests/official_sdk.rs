//! Huawei's official Python SDK (`huaweicloudsdkiotda`, unmodified) signs with both
//! `SDK-HMAC-SHA256` and `V11-HMAC-SHA256` and drives products and devices end to end.
//!
//! The SDK is installed once into `target/test-python-venv` (from PyPI) by the harness, so
//! `cargo test --workspace` stays the only set-up command (see `tests::python`).

use std::path::Path;
use std::process::Command;

use tests::{Engine, EngineOptions, PROJECT_A};

#[test]
fn the_official_python_sdk_works_unmodified_with_both_signatures() {
    let Some(python) = tests::python::python_or_skip(&[("huaweicloudsdkiotda", "huaweicloudsdkiotda")])
    else {
        return;
    };
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/official_sdk.py");
    for mode in ["sdk", "v11"] {
        let output = Command::new(&python)
            .arg(&script)
            .arg(format!("http://{}", engine.http))
            .args([PROJECT_A.project_id, PROJECT_A.ak, PROJECT_A.sk, mode])
            .output()
            .expect("running the SDK script");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("OFFICIAL SDK OK"),
            "mode {mode}:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

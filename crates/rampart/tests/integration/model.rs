//! `rampart model scan` against the generated corpus (scripts/model-corpus.py): every
//! malicious file must be flagged and every benign one must pass, through the real binary,
//! with the JSON, SARIF and table outputs and the CI exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::BIN;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes the corpus into a fresh temp dir (the script needs only Python's standard library).
fn corpus() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(repo_root().join("scripts/model-corpus.py"))
        .arg(dir.path())
        .output()
        .expect("python3 runs the corpus script");
    assert!(
        out.status.success(),
        "corpus script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn scan(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["model", "scan", "--quiet"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

fn rank(severity: &str) -> usize {
    SEVERITIES.iter().position(|s| *s == severity).unwrap_or(0)
}

/// Scans `dir` and compares each file with its MANIFEST.json entry: malicious files flagged
/// (a finding above info), at least as severe as the entry says; benign files with nothing
/// above info. Returns the mismatches and the (malicious, benign) counts.
fn check_manifest(dir: &Path) -> (Vec<String>, usize, usize) {
    let manifest: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("MANIFEST.json")).unwrap()).unwrap();
    std::fs::remove_file(dir.join("MANIFEST.json")).unwrap();
    let (_, stdout, stderr) = scan(&[dir.to_str().unwrap(), "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), manifest.len());
    let mut wrong = Vec::new();
    let (mut malicious, mut benign) = (0, 0);
    for entry in &manifest {
        let name = entry["file"].as_str().unwrap();
        let path = dir.join(name).display().to_string();
        let file = files
            .iter()
            .find(|f| f["path"] == path.as_str())
            .unwrap_or_else(|| panic!("{name} not reported"));
        assert!(file.get("error").is_none(), "{name}: {}", file["error"]);
        let worst = file["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| rank(f["severity"].as_str().unwrap()))
            .max()
            .unwrap_or(0);
        match entry["expect"].as_str().unwrap() {
            "malicious" => {
                malicious += 1;
                let want = entry["severity"].as_str().map_or(1, rank);
                if worst == 0 {
                    wrong.push(format!("missed {name} ({})", entry["class"]));
                } else if worst < want {
                    wrong.push(format!(
                        "{name} ({}) is {}, must be at least {}: {}",
                        entry["class"], SEVERITIES[worst], SEVERITIES[want], file["findings"]
                    ));
                }
            }
            _ => {
                benign += 1;
                if worst > 0 {
                    wrong.push(format!("false positive {name}: {}", file["findings"]));
                }
            }
        }
    }
    (wrong, malicious, benign)
}

#[test]
fn corpus_verdicts_match_the_manifest() {
    let dir = corpus();
    let (wrong, malicious, benign) = check_manifest(dir.path());
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(
        malicious >= 130 && benign >= 35,
        "{malicious} malicious, {benign} benign"
    );
}

/// Benign files written by the real libraries (numpy, joblib, scikit-learn, pandas, Keras 3,
/// safetensors) in the venv scripts/test.sh makes: none may be flagged.
#[test]
fn files_written_by_the_real_libraries_are_clean() {
    let Ok(python) = std::env::var("RAMPART_MODEL_LIBS_PY") else {
        assert!(
            std::env::var("RAMPART_REQUIRE_MODEL_LIBS").is_err(),
            "RAMPART_REQUIRE_MODEL_LIBS is set but RAMPART_MODEL_LIBS_PY is not"
        );
        eprintln!("skipped: set RAMPART_MODEL_LIBS_PY to a python with numpy, joblib, scikit-learn, pandas, keras, jax, safetensors");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(python)
        .arg(repo_root().join("scripts/model-corpus-real.py"))
        .arg(dir.path())
        .output()
        .expect("the model-library python runs");
    assert!(
        out.status.success(),
        "real-library corpus script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (wrong, _, benign) = check_manifest(dir.path());
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(benign >= 30, "{benign} files");
}

#[test]
fn exit_codes_outputs_and_allowlist() {
    let dir = corpus();
    let d = dir.path();
    // clean files: exit 0, table says clean
    let (code, out, _) = scan(&[
        d.join("torch/state_dict.pt").to_str().unwrap(),
        d.join("safetensors/model.safetensors").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("clean") && out.contains("pytorch"), "{out}");
    // a dangerous pickle named config.json: exit 1, critical
    let evil = d.join("confusion/config.json");
    let (code, out, _) = scan(&[evil.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("CRITICAL") && out.contains("os.system"), "{out}");
    // SARIF 2.1.0 with rule metadata and a result pointing at the file
    let (code, out, _) = scan(&[evil.to_str().unwrap(), "--format", "sarif"]);
    assert_eq!(code, 1);
    let sarif: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "RMS001");
    assert_eq!(result["level"], "error");
    assert!(result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("confusion/config.json"));
    assert!(!sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .is_empty());
    // an unreadable path is an error (2) unless there are findings, which win (1)
    let missing = d.join("no-such-file.pt");
    let (code, out, _) = scan(&[missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    let (code, out, _) = scan(&[missing.to_str().unwrap(), evil.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("ERROR") && out.contains("CRITICAL"), "{out}");
    // --allow takes an unknown global off the findings, but never a dangerous one
    let unknown = d.join("build_on_global.pkl");
    let (code, _, _) = scan(&[unknown.to_str().unwrap(), "--allow", "torch.nn.*"]);
    assert_eq!(code, 1, "os.system stays critical");
    let (code, out, _) = scan(&[evil.to_str().unwrap(), "--allow", "os.system"]);
    assert_eq!(code, 1, "{out}");
    // --fail-on high: a medium-only file passes the gate but is still reported
    let medium = d.join("zip/torchscript_code.pt");
    let (code, out, _) = scan(&[medium.to_str().unwrap(), "--fail-on", "high"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("RMS033"), "{out}");
}

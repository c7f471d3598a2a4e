//! Reads evidence files the way apr-qa does and says, per file and per record, whether serde accepts them.
//!
//! The types below repeat the field names and Rust types apr-qa declares (crates/apr-qa-runner's
//! `Evidence`, `Outcome`, `PerformanceMetrics`, `HostInfo`; apr-qa-gen's `QaScenario`, `ModelId`,
//! `Modality`, `Backend`, `Format`, `TraceLevel`) with the same serde attributes: none on the structs
//! (unknown keys are ignored, a missing `Option` field is `None`) and `rename_all = "lowercase"` on the
//! scenario enums. apr-qa reads a whole `evidence.json` as `Vec<Evidence>`; that is the verdict per
//! file. Each record is also read alone so that a failing file names its first bad records.
//!
//! Usage: apr-qa-reader FILE...   (a `.jsonl` file is read line by line, each line one record)
//! Output: one JSON object per file on stdout; exit 0 when every file parses, 1 otherwise.

use std::collections::HashMap;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde::Deserialize;

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
enum Outcome {
    Corroborated,
    Falsified,
    Skipped,
    Timeout,
    Crashed,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Modality {
    Run,
    Chat,
    Serve,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    Cpu,
    Gpu,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    Gguf,
    SafeTensors,
    Apr,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TraceLevel {
    None,
    Basic,
    Layer,
    Payload,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct ModelId {
    org: String,
    name: String,
    variant: Option<String>,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct QaScenario {
    id: String,
    model: ModelId,
    modality: Modality,
    backend: Backend,
    format: Format,
    prompt: String,
    temperature: f32,
    max_tokens: u32,
    seed: u64,
    trace_level: TraceLevel,
    oracle_type: String,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct PerformanceMetrics {
    tokens_per_second: Option<f64>,
    time_to_first_token_ms: Option<f64>,
    total_tokens: Option<u32>,
    memory_peak_mb: Option<u64>,
    duration_ms: u64,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct HostInfo {
    hostname: String,
    os: String,
    cpu: String,
    gpu: Option<String>,
    apr_version: String,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct Evidence {
    id: String,
    gate_id: String,
    scenario: QaScenario,
    outcome: Outcome,
    reason: String,
    output: String,
    stderr: Option<String>,
    exit_code: Option<i32>,
    metrics: PerformanceMetrics,
    timestamp: DateTime<Utc>,
    host: HostInfo,
    metadata: HashMap<String, String>,
}

/// JSON string literal of `s` (serde_json escapes it).
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".to_string())
}

/// Records as individual JSON values (for per-record errors); None when the text is not JSON at all.
fn record_values(text: &str, jsonl: bool) -> Option<Vec<serde_json::Value>> {
    if jsonl {
        return text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).ok())
            .collect();
    }
    match serde_json::from_str::<serde_json::Value>(text).ok()? {
        serde_json::Value::Array(v) => Some(v),
        _ => None,
    }
}

/// One file: (parsed as apr-qa parses it, records, records that parse, first per-record errors).
fn check(path: &str) -> (bool, String) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return (false, format!("{{\"file\":{},\"ok\":false,\"error\":{}}}", quote(path), quote(&e.to_string())))
        }
    };
    let jsonl = path.ends_with(".jsonl");
    let whole: Result<usize, String> = if jsonl {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| serde_json::from_str::<Evidence>(l).map_err(|e| format!("line {}: {e}", i + 1)))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.len())
    } else {
        serde_json::from_str::<Vec<Evidence>>(&text).map(|v| v.len()).map_err(|e| e.to_string())
    };
    let values = record_values(&text, jsonl).unwrap_or_default();
    let mut parsed = 0usize;
    let mut errors: Vec<String> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match Evidence::deserialize(v) {
            Ok(_) => parsed += 1,
            Err(e) => {
                if errors.len() < 5 {
                    errors.push(quote(&format!("record {i}: {e}")));
                }
            }
        }
    }
    let (ok, error) = match &whole {
        Ok(_) => (true, "null".to_string()),
        Err(e) => (false, quote(e)),
    };
    let line = format!(
        "{{\"file\":{},\"ok\":{ok},\"error\":{error},\"records\":{},\"parsed\":{parsed},\"record_errors\":[{}]}}",
        quote(path),
        values.len(),
        errors.join(",")
    );
    (ok, line)
}

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: apr-qa-reader FILE...");
        return ExitCode::from(2);
    }
    let mut all_ok = true;
    for f in &files {
        let (ok, line) = check(f);
        all_ok &= ok;
        println!("{line}");
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

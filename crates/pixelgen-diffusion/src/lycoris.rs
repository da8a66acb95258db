//! LyCORIS LoHa and LoKr layers in kohya names: parsing their factors and forming their weight
//! updates (the formulas of the LyCORIS paper, Yeh et al. 2023, and its README):
//!
//! - LoHa: `dW = (hada_w1_a @ hada_w1_b) ⊙ (hada_w2_a @ hada_w2_b) · alpha / r`, `r` the rows of
//!   `hada_w1_b`;
//! - LoKr: `dW = kron(w1, w2) · scale`, each of `w1`, `w2` stored full (`lokr_w1`) or as a
//!   product (`lokr_w1_a @ lokr_w1_b`); a convolution's `w2` is a kernel `[o2, i2, kh, kw]`;
//!   `scale = alpha / r` when a factor is a product (`r` the rows of its `_b`, `w2`'s when
//!   both are), 1 when both are full.
//!
//! Tucker-decomposed convolutions (`hada_t1`, `lokr_t2`) are not read: their keys are left
//! over and reported as ignored.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::lora::{KronFactor, LoraUpdate};

/// The suffixes that start a LyCORIS layer in a kohya-named file.
pub(crate) const FIRST_KEYS: [&str; 3] = [".hada_w1_a", ".lokr_w1", ".lokr_w1_a"];

/// A parsed LyCORIS layer: its update, `alpha`-derived scale and the keys it used.
pub(crate) struct Parsed {
    pub(crate) update: LoraUpdate,
    pub(crate) scale: f64,
    pub(crate) used: Vec<String>,
}

/// The LoHa or LoKr layer at `prefix`, `None` when its keys are incomplete or Tucker-decomposed
/// (left over, then reported as ignored).
pub(crate) fn parse(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    prefix: &str,
) -> Result<Option<Parsed>> {
    let get = |s: &str| tensors.get(&format!("{prefix}.{s}"));
    let key = |s: &str| format!("{prefix}.{s}");
    let alpha = match get("alpha") {
        Some(a) => Some(crate::lora::scalar(a)?),
        None => None,
    };
    let rows = |t: &Tensor| t.dims().first().copied().unwrap_or(0);
    let f = crate::lora::factor;
    if let (Some(a1), Some(b1), Some(a2), Some(b2)) = (
        get("hada_w1_a"),
        get("hada_w1_b"),
        get("hada_w2_a"),
        get("hada_w2_b"),
    ) {
        if get("hada_t1").is_some() || get("hada_t2").is_some() {
            return Ok(None);
        }
        let r = crate::lora::rank_of(path, &key("hada_w1_b"), b1)?;
        return Ok(Some(Parsed {
            update: LoraUpdate::Hadamard {
                w1_a: f(a1)?,
                w1_b: f(b1)?,
                w2_a: f(a2)?,
                w2_b: f(b2)?,
            },
            scale: alpha.map(|a| a / r as f64).unwrap_or(1.0),
            used: ["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha"]
                .map(key)
                .to_vec(),
        }));
    }
    if get("lokr_t2").is_some() {
        return Ok(None);
    }
    let mut used = vec![key("alpha")];
    let mut kron = |n: &str| -> Result<Option<(KronFactor, Option<usize>)>> {
        if let Some(w) = get(&format!("lokr_{n}")) {
            used.push(key(&format!("lokr_{n}")));
            return Ok(Some((KronFactor::Full(f(w)?), None)));
        }
        match (get(&format!("lokr_{n}_a")), get(&format!("lokr_{n}_b"))) {
            (Some(a), Some(b)) => {
                used.extend([key(&format!("lokr_{n}_a")), key(&format!("lokr_{n}_b"))]);
                Ok(Some((KronFactor::Product(f(a)?, f(b)?), Some(rows(b)))))
            }
            _ => Ok(None),
        }
    };
    let (Some((w1, r1)), Some((w2, r2))) = (kron("w1")?, kron("w2")?) else {
        return Ok(None);
    };
    let scale = match (alpha, r2.or(r1)) {
        (Some(a), Some(r)) if r > 0 => a / r as f64,
        _ => 1.0,
    };
    Ok(Some(Parsed {
        update: LoraUpdate::Kronecker { w1, w2 },
        scale,
        used,
    }))
}

/// `kron(w1, w2)` as the `[o1·o2, i1·i2·k]` matrix of a weight `[out, in(, kh, kw)]`, from
/// `w1` `[o1, i1]` and `w2` `[o2, i2·k]` (`k` = kh·kw, 1 for a linear layer).
pub(crate) fn kron_matrix(
    w1: &Tensor,
    w2: &Tensor,
    (o1, i1): (usize, usize),
    (o2, i2, k): (usize, usize, usize),
) -> candle_core::Result<Tensor> {
    let a = w1.reshape((o1, 1, i1, 1, 1))?;
    let b = w2.reshape((1, o2, 1, i2, k))?;
    a.broadcast_mul(&b)?.reshape((o1 * o2, i1 * i2 * k))
}

/// A [`KronFactor`] as a matrix on `dev`.
pub(crate) fn kron_factor(
    f: &KronFactor,
    rows: usize,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    match f {
        KronFactor::Full(w) => {
            let n = w.elem_count() / rows.max(1);
            w.to_device(dev)?.reshape((rows, n))
        }
        KronFactor::Product(a, b) => {
            let r = b.dims().first().copied().unwrap_or(0);
            let n = b.elem_count() / r.max(1);
            a.to_device(dev)?
                .reshape((rows, r))?
                .matmul(&b.to_device(dev)?.reshape((r, n))?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kron_matrix_is_the_kronecker_product_laid_out_as_a_conv_weight() {
        // w1 [2, 1], w2 [1, 2] with k = 2: W[a*1+b, (c*2+d)*2+kk] = w1[a, c] * w2[b, d, kk].
        let w1 = Tensor::new(&[[2f32], [3.]], &Device::Cpu).unwrap();
        let w2 = Tensor::new(&[[1f32, 10., 100., 1000.]], &Device::Cpu).unwrap();
        let m = kron_matrix(&w1, &w2, (2, 1), (1, 2, 2)).unwrap();
        assert_eq!(
            m.to_vec2::<f32>().unwrap(),
            [[2., 20., 200., 2000.], [3., 30., 300., 3000.]]
        );
        // Linear: kron([[1, 2]], [[1], [3]]) = [[1, 2], [3, 6]].
        let a = Tensor::new(&[[1f32, 2.]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1f32], [3.]], &Device::Cpu).unwrap();
        let m = kron_matrix(&a, &b, (1, 2), (2, 1, 1)).unwrap();
        assert_eq!(m.to_vec2::<f32>().unwrap(), [[1., 2.], [3., 6.]]);
    }
}

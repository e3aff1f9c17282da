//! Fully connected layers `y = x·Wᵀ + b` with the bias, a residual and GELU fused into the
//! GEMM on the CPU.

use candle_core::{CpuStorage, Layout, Module, Result, Shape, Tensor};

use std::sync::Arc;

use super::amx::PackedWeights;
use super::gemm::{
    linear_gemm, residual_mlp_f32, Epilogue, PARALLEL_GEMM_MIN_MACS, SPLIT_MAX_WEIGHTS,
};
use super::{contiguous_f32, gelu, on_cpu_f32, transpose_2d};
use crate::weights::{Scope, WeightsError};

/// A fully connected layer `y = x Wᵀ + b` over the last dimension.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `Wᵀ`, `[in, out]`: the layout in which the CPU GEMM reads the weights without
    /// re-packing them (see [`linear_gemm`]). Only its shape once [`Linear::split_bf16`] packed
    /// the weights (a one-element tensor broadcast to it).
    weight_t: Tensor,
    /// `[out]`
    bias: Option<Tensor>,
    /// The bias as host data for the CPU kernel (read once, not per call).
    bias_host: Option<Vec<f32>>,
    /// Set by [`Linear::split_bf16`] on CPUs with AMX: the weights packed for its tiles, the
    /// only copy kept.
    packed: Option<Arc<PackedWeights>>,
}

impl Linear {
    /// Loads `weight` `[out, in]` and `bias` `[out]` (when `bias` is true) from `scope`.
    pub fn load(
        scope: &Scope,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> std::result::Result<Self, WeightsError> {
        let weight = scope.get("weight", &[out_dim, in_dim])?;
        let bias = if bias {
            Some(scope.get("bias", &[out_dim])?)
        } else {
            None
        };
        Self::from_tensors(weight, bias).map_err(|e| scope.error("weight", e))
    }

    /// Builds a layer from tensors (`weight` `[out, in]`, `bias` `[out]`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self::from_transposed(transpose_2d(&weight)?, bias))
    }

    /// Builds a layer from `Wᵀ` `[in, out]` (the layout of GPT-2's `Conv1D`) and `bias` `[out]`.
    pub fn from_transposed(weight_t: Tensor, bias: Option<Tensor>) -> Self {
        let bias_host = bias
            .as_ref()
            .and_then(|b| on_cpu_f32(b).then(|| b.to_vec1().ok()).flatten());
        Self {
            weight_t,
            bias,
            bias_host,
            packed: None,
        }
    }

    /// Runs the layer in split bfloat16 (`hi·hi + hi·lo + lo·hi`, about 16 significant bits
    /// per product, see [`super::amx`]) on CPUs with AMX tiles: for the image encoders' large
    /// products, whose outputs stay within their parity tolerances. The weights are packed
    /// here for the tiles (as much memory as f32) and the f32 copy is dropped. Elsewhere (no
    /// AMX, `SEGATTN_AMX=0`, weights not f32 on the CPU) the layer is unchanged.
    pub fn split_bf16(mut self) -> Self {
        let bias_ready = self.bias.is_none() || self.bias_host.is_some();
        if !super::amx::available() || !on_cpu_f32(&self.weight_t) || !bias_ready {
            return self;
        }
        let Ok((k, n)) = self.weight_t.dims2() else {
            return self;
        };
        let host = self.weight_t.flatten_all().and_then(|t| t.to_vec1::<f32>());
        let shape_only = Tensor::zeros((1, 1), candle_core::DType::F32, self.weight_t.device())
            .and_then(|t| t.broadcast_as((k, n)));
        if let (Ok(host), Ok(shape_only), true) = (host, shape_only, k > 0 && n > 0) {
            self.packed = Some(Arc::new(PackedWeights::new(&host, k, n, true)));
            self.weight_t = shape_only;
        }
        self
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.weight_t.dims()[1]
    }

    /// `gelu(x Wᵀ + b)`, fused on the CPU.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None, true)
    }

    /// `x Wᵀ + b + residual` (`residual` of the output's shape), then GELU when `gelu` is set;
    /// fused on the CPU.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor, gelu_after: bool) -> Result<Tensor> {
        self.forward_with(x, Some(residual), gelu_after)
    }

    /// Whether the CPU kernels can read the bias as host data (or there is none).
    fn bias_on_host(&self) -> bool {
        self.bias.is_none() || self.bias_host.is_some()
    }

    fn forward_with(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        gelu_after: bool,
    ) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim.max(1);
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = self.out_dim();
        let x2 = x.reshape((rows, in_dim))?;
        let on_cpu = on_cpu_f32(x);
        if self.packed.is_some() && !on_cpu {
            candle_core::bail!("linear: a layer packed for AMX tiles takes f32 input on the CPU");
        }
        if on_cpu && self.bias_on_host() {
            let op = LinearOp {
                bias: self.bias_host.as_deref(),
                gelu: gelu_after,
                split_bf16: self.packed.as_deref(),
            };
            let y = match residual {
                None => x2.contiguous()?.apply_op2_no_bwd(&self.weight_t, &op)?,
                Some(r) => {
                    let r = r.reshape((rows, self.out_dim()))?.contiguous()?;
                    let op3 = LinearResidualOp(op);
                    x2.contiguous()?
                        .apply_op3_no_bwd(&self.weight_t, &r, &op3)?
                }
            };
            return y.reshape(out_dims);
        }
        let mut y = x2.matmul(&self.weight_t)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let mut y = y.reshape(out_dims)?;
        if let Some(r) = residual {
            y = (y + r)?;
        }
        if gelu_after {
            y = gelu(&y)?;
        }
        Ok(y)
    }
}

/// `x + fc2(gelu(fc1(norm(x))))` over the last dimension of `x`: a transformer block's second
/// half (`norm` skipped when `None`). On the CPU, with both layers packed for AMX tiles, in one
/// pass over blocks of 64 tokens (the `amx` module's `residual_mlp`); elsewhere layer by layer.
pub fn residual_mlp(
    x: &Tensor,
    norm: Option<&super::LayerNorm>,
    fc1: &Linear,
    fc2: &Linear,
) -> Result<Tensor> {
    let host = on_cpu_f32(x) && fc1.bias_on_host() && fc2.bias_on_host();
    let fused = match (&fc1.packed, &fc2.packed) {
        (Some(p1), Some(p2)) if host => Some((p1, p2)),
        _ => None,
    };
    let Some((p1, p2)) = fused else {
        // In f32 only while `fc1` has at most `SPLIT_MAX_WEIGHTS` (1 MB; the two layers
        // about the L2 cache): each block of tokens reads all of both.
        if host
            && fc1.weight_t.elem_count() <= SPLIT_MAX_WEIGHTS
            && fc1.packed.is_none()
            && fc2.packed.is_none()
            && on_cpu_f32(&fc1.weight_t)
            && on_cpu_f32(&fc2.weight_t)
        {
            let op = ResidualMlpF32Op {
                norm: norm.map(|n| n.to_host()).transpose()?,
                b1: fc1.bias_host.as_deref(),
                b2: fc2.bias_host.as_deref(),
            };
            return x
                .contiguous()?
                .apply_op3_no_bwd(&fc1.weight_t, &fc2.weight_t, &op);
        }
        let h = match norm {
            Some(n) => fc1.forward_gelu(&n.forward(x)?)?,
            None => fc1.forward_gelu(x)?,
        };
        return fc2.forward_add(&h, x, false);
    };
    let c = x.dims().last().copied().unwrap_or(0);
    if p1.k != c || p2.n != c {
        candle_core::bail!(
            "MLP: input has {c} features, layers take {} and give {}",
            p1.k,
            p2.n
        );
    }
    let op = ResidualMlpOp {
        norm: norm.map(|n| n.to_host()).transpose()?,
        fc1: (p1, fc1.bias_host.as_deref()),
        fc2: (p2, fc2.bias_host.as_deref()),
    };
    x.contiguous()?.apply_op1_no_bwd(&op)
}

/// [`residual_mlp`]'s fused CPU form, reading the input's storage in place.
struct ResidualMlpOp<'a> {
    norm: Option<(Vec<f32>, Vec<f32>, f32)>,
    fc1: (&'a PackedWeights, Option<&'a [f32]>),
    fc2: (&'a PackedWeights, Option<&'a [f32]>),
}

impl candle_core::CustomOp1 for ResidualMlpOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-residual-mlp"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout)?;
        let c = layout.dims().last().copied().unwrap_or(0);
        let norm = self
            .norm
            .as_ref()
            .map(|(w, b, eps)| (w.as_slice(), b.as_slice(), *eps));
        let out = super::amx::residual_mlp(x, norm, self.fc1, self.fc2, c);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// [`residual_mlp`]'s fused f32 CPU form (no AMX): `x`, `W1ᵀ` `[c, hidden]` and `W2ᵀ`
/// `[hidden, c]` read in place.
struct ResidualMlpF32Op<'a> {
    norm: Option<(Vec<f32>, Vec<f32>, f32)>,
    b1: Option<&'a [f32]>,
    b2: Option<&'a [f32]>,
}

impl candle_core::CustomOp3 for ResidualMlpF32Op<'_> {
    fn name(&self) -> &'static str {
        "segattn-residual-mlp-f32"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let c = l1.dims().last().copied().unwrap_or(0);
        let (c1, hidden) = l2.shape().dims2()?;
        if c1 != c || l3.shape().dims2()? != (hidden, c) {
            candle_core::bail!(
                "MLP: input has {c} features, weights {:?} and {:?}",
                l2.dims(),
                l3.dims()
            );
        }
        let norm = self
            .norm
            .as_ref()
            .map(|(w, b, eps)| (w.as_slice(), b.as_slice(), *eps));
        let out = residual_mlp_f32(
            contiguous_f32(s1, l1)?,
            norm,
            (contiguous_f32(s2, l2)?, self.b1),
            (contiguous_f32(s3, l3)?, self.b2),
            c,
        );
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

impl Module for Linear {
    /// `[..., in]` → `[..., out]`; leading dimensions are flattened into one GEMM.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None, false)
    }
}

/// `x · Wᵀ + b` on the CPU with the bias (and optionally GELU) fused into the GEMM.
///
/// PERF: candle's matmul always wakes the thread pool and adds the bias in a second pass; for
/// the small products of a 16-token text model or a mask-decoder click the pool wake-up cost
/// more than the arithmetic.
pub(super) struct LinearOp<'a> {
    /// The bias `[n]`, if any.
    pub(super) bias: Option<&'a [f32]>,
    /// GELU after the bias (and residual).
    pub(super) gelu: bool,
    /// The weights packed for AMX tiles (then the weight operand is only a shape): the
    /// product runs in split bfloat16.
    pub(super) split_bf16: Option<&'a PackedWeights>,
}

fn linear_dims(l1: &Layout, l2: &Layout) -> Result<(usize, usize, usize)> {
    let (m, k) = l1.shape().dims2()?;
    let (k2, n) = l2.shape().dims2()?;
    if k != k2 {
        candle_core::bail!("linear: input has {k} features, weight expects {k2}");
    }
    Ok((m, n, k))
}

impl LinearOp<'_> {
    /// `x [m, k]`, `wᵀ [k, n]` (and `residual [m, n]`) → `[m, n]`.
    fn run_storages(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        residual: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, n, k) = linear_dims(l1, l2)?;
        let x = contiguous_f32(s1, l1)?;
        let epilogue = match (residual, self.gelu) {
            (None, false) => Epilogue::None,
            (None, true) => Epilogue::Gelu,
            (Some(r), false) => Epilogue::Add(r),
            (Some(r), true) => Epilogue::AddGelu(r),
        };
        let dst = if let Some(packed) = self.split_bf16 {
            let parallel = m * n * k >= PARALLEL_GEMM_MIN_MACS;
            super::amx::linear_bf16x3(x, packed, self.bias, (m, n, k), epilogue, parallel)
        } else {
            linear_gemm(x, contiguous_f32(s2, l2)?, self.bias, (m, n, k), epilogue)
        };
        Ok((CpuStorage::F32(dst), Shape::from((m, n))))
    }
}

impl candle_core::CustomOp2 for LinearOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run_storages((s1, l1), (s2, l2), None)
    }
}

/// [`LinearOp`] with a residual `[m, n]` added (before the optional GELU).
pub(super) struct LinearResidualOp<'a>(pub(super) LinearOp<'a>);

impl candle_core::CustomOp3 for LinearResidualOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-linear-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, n, _) = linear_dims(l1, l2)?;
        if l3.shape().dims() != [m, n] {
            candle_core::bail!("linear: residual {:?}, output [{m}, {n}]", l3.dims());
        }
        self.0
            .run_storages((s1, l1), (s2, l2), Some(contiguous_f32(s3, l3)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testing::{assert_close, f64_of, tensor, vals};

    /// The fused CPU layer equals candle's fallback (bias, residual and GELU).
    #[test]
    fn fallback_matches_the_cpu_kernel() {
        let lin = Linear::from_tensors(
            tensor(vals(24 * 16, 1), &[24, 16]),
            Some(tensor(vals(24, 2), &[24])),
        )
        .expect("linear");
        let lin64 = Linear::from_transposed(f64_of(&lin.weight_t), lin.bias.as_ref().map(f64_of));
        let x = tensor(vals(40 * 16, 3), &[2, 20, 16]);
        let r = tensor(vals(40 * 24, 4), &[2, 20, 24]);
        assert_close(
            &lin.forward_add(&x, &r, true).expect("cpu"),
            &lin64
                .forward_add(&f64_of(&x), &f64_of(&r), true)
                .expect("fallback"),
            "linear + residual + gelu",
        );
        assert_close(
            &lin.forward(&x).expect("cpu"),
            &lin64.forward(&f64_of(&x)).expect("fallback"),
            "linear",
        );
    }

    /// A layer in split bfloat16 (where the CPU has AMX; otherwise the same f32 layer) equals
    /// the f64 fallback within 1e-4 for 5 rows and for 300 (several 64-row jobs, a partial
    /// one), with bias, residual and GELU, after its f32 weights were dropped.
    #[test]
    fn split_bf16_layer_matches_the_fallback() {
        let w = tensor(vals(40 * 70, 1), &[40, 70]);
        let b = Some(tensor(vals(40, 2), &[40]));
        let lin = Linear::from_tensors(w.clone(), b.clone()).expect("linear");
        let lin64 = Linear::from_transposed(f64_of(&lin.weight_t), lin.bias.as_ref().map(f64_of));
        let split = Linear::from_tensors(w, b).expect("linear").split_bf16();
        assert_eq!(split.packed.is_some(), crate::model::ops::amx::available());
        for rows in [5, 300] {
            let x = tensor(vals(rows * 70, 3), &[rows, 70]);
            let r = tensor(vals(rows * 40, 4), &[rows, 40]);
            let want = lin64
                .forward_add(&f64_of(&x), &f64_of(&r), true)
                .expect("f64");
            let got = split.forward_add(&x, &r, true).expect("split");
            crate::model::ops::testing::assert_close_tol(
                &got,
                &want,
                1e-4,
                "split + residual + gelu",
            );
            let got = split.forward(&x).expect("split");
            let want = lin64.forward(&f64_of(&x)).expect("f64");
            crate::model::ops::testing::assert_close_tol(&got, &want, 1e-4, "split");
        }
    }
}

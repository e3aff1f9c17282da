//! segattn's own tiny transformer (`model_type` `segattn-tiny`): the model the Train view and
//! `segattn train` train, saved as a model folder the Attention and Positional-encodings views
//! open like any other. One forward serves training (its tensors are candle `Var`s, so the
//! gradients flow through every op used here) and inference (tensors read from the folder).
//!
//! Pre-LayerNorm blocks (LayerNorm → attention → residual, LayerNorm → MLP with tanh-GELU →
//! residual), a
//! final LayerNorm and an untied output layer; positions learned, sinusoidal (added to the token
//! embedding) or rotary (applied to each head's queries and keys); causal or bidirectional.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, D};

use super::ForwardOutput;
use crate::analysis::positional::sinusoidal;
use crate::types::train::Positions;
use crate::weights::Scope;

/// LayerNorm epsilon of the tiny models.
pub const LAYER_NORM_EPS: f64 = 1e-5;
/// The RoPE base (RoFormer's 10000).
pub const ROPE_BASE: f64 = 10000.0;

/// The shape of a tiny transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TinySpec {
    /// Vocabulary size.
    pub vocab: usize,
    /// Model width.
    pub dim: usize,
    /// Blocks.
    pub layers: usize,
    /// Heads per block.
    pub heads: usize,
    /// Longest input (rows of a learned or sinusoidal table).
    pub max_len: usize,
    /// How positions are encoded.
    pub positions: Positions,
    /// Left-to-right attention.
    pub causal: bool,
}

impl TinySpec {
    /// The MLP's width (4 × the model's).
    pub fn hidden(&self) -> usize {
        4 * self.dim
    }

    /// Every parameter's name and shape, in a fixed order (the order of initialisation).
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        let (d, h, v) = (self.dim, self.hidden(), self.vocab);
        let mut out = vec![("tok_emb.weight".to_string(), vec![v, d])];
        if self.positions == Positions::Learned {
            out.push(("pos_emb.weight".into(), vec![self.max_len, d]));
        }
        for l in 0..self.layers {
            let p = |n: &str| format!("layers.{l}.{n}");
            out.push((p("ln1.weight"), vec![d]));
            out.push((p("ln1.bias"), vec![d]));
            for w in ["q", "k", "v", "o"] {
                out.push((p(&format!("attn.{w}.weight")), vec![d, d]));
                out.push((p(&format!("attn.{w}.bias")), vec![d]));
            }
            out.push((p("ln2.weight"), vec![d]));
            out.push((p("ln2.bias"), vec![d]));
            out.push((p("mlp.fc1.weight"), vec![h, d]));
            out.push((p("mlp.fc1.bias"), vec![h]));
            out.push((p("mlp.fc2.weight"), vec![d, h]));
            out.push((p("mlp.fc2.bias"), vec![d]));
        }
        out.push(("ln_f.weight".into(), vec![d]));
        out.push(("ln_f.bias".into(), vec![d]));
        out.push(("head.weight".into(), vec![v, d]));
        out.push(("head.bias".into(), vec![v]));
        out
    }
}

/// `y = x·Wᵀ + b` with `W` `[out, in]` (PyTorch's layout).
struct Dense {
    w: Tensor,
    b: Tensor,
}

impl Dense {
    // x: [.., in] → [.., out], as one 2-D product (a batched one would run a GEMM per row
    // block)
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let inner = dims.pop().unwrap_or(1);
        let rows = dims.iter().product::<usize>();
        let y = x
            .reshape((rows, inner))?
            .matmul(&self.w.t()?)?
            .broadcast_add(&self.b)?;
        dims.push(self.w.dim(0)?);
        y.reshape(dims)
    }
}

struct Norm {
    w: Tensor,
    b: Tensor,
}

impl Norm {
    /// LayerNorm over the last axis, from differentiable ops.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + LAYER_NORM_EPS)?.sqrt()?)?;
        xn.broadcast_mul(&self.w)?.broadcast_add(&self.b)
    }
}

struct Block {
    ln1: Norm,
    q: Dense,
    k: Dense,
    v: Dense,
    o: Dense,
    ln2: Norm,
    fc1: Dense,
    fc2: Dense,
}

/// A tiny transformer's forward pass over its parameters.
pub struct TinyNet {
    spec: TinySpec,
    tok_emb: Tensor,
    /// `[max_len, dim]`: learned or sinusoidal; `None` with RoPE.
    pos_table: Option<Tensor>,
    blocks: Vec<Block>,
    ln_f: Norm,
    head: Dense,
}

impl TinyNet {
    /// Builds the net from `get(name, shape)`, called once per [`TinySpec::parameters`] entry.
    pub fn build(
        spec: TinySpec,
        device: &Device,
        dtype: DType,
        mut get: impl FnMut(&str, &[usize]) -> Result<Tensor>,
    ) -> Result<Self> {
        let mut dense = |p: &str, i: usize, o: usize| -> Result<Dense> {
            Ok(Dense {
                w: get(&format!("{p}.weight"), &[o, i])?,
                b: get(&format!("{p}.bias"), &[o])?,
            })
        };
        let d = spec.dim;
        let mut blocks = Vec::with_capacity(spec.layers);
        let mut norms = Vec::new();
        for l in 0..spec.layers {
            let p = |n: &str| format!("layers.{l}.{n}");
            let q = dense(&p("attn.q"), d, d)?;
            let k = dense(&p("attn.k"), d, d)?;
            let v = dense(&p("attn.v"), d, d)?;
            let o = dense(&p("attn.o"), d, d)?;
            let fc1 = dense(&p("mlp.fc1"), d, spec.hidden())?;
            let fc2 = dense(&p("mlp.fc2"), spec.hidden(), d)?;
            norms.push((p("ln1"), p("ln2")));
            blocks.push((q, k, v, o, fc1, fc2));
        }
        let head = dense("head", d, spec.vocab)?;
        let mut norm = |p: &str| -> Result<Norm> {
            Ok(Norm {
                w: get(&format!("{p}.weight"), &[d])?,
                b: get(&format!("{p}.bias"), &[d])?,
            })
        };
        let blocks = blocks
            .into_iter()
            .zip(norms)
            .map(|((q, k, v, o, fc1, fc2), (n1, n2))| {
                Ok(Block {
                    ln1: norm(&n1)?,
                    q,
                    k,
                    v,
                    o,
                    ln2: norm(&n2)?,
                    fc1,
                    fc2,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ln_f = norm("ln_f")?;
        let tok_emb = get("tok_emb.weight", &[spec.vocab, d])?;
        let pos_table = match spec.positions {
            Positions::Learned => Some(get("pos_emb.weight", &[spec.max_len, d])?),
            Positions::Sinusoidal => {
                let m = sinusoidal(spec.max_len, d, 10000.0);
                Some(Tensor::from_vec(m.data, (m.rows, m.cols), device)?.to_dtype(dtype)?)
            }
            Positions::Rope => None,
        };
        Ok(Self {
            spec,
            tok_emb,
            pos_table,
            blocks,
            ln_f,
            head,
        })
    }

    /// Loads the net from a model folder's tensors.
    pub fn load(spec: TinySpec, scope: &Scope) -> Result<Self> {
        let device = scope.device().clone();
        Self::build(spec, &device, DType::F32, |name, shape| {
            Ok(scope.get(name, shape)?)
        })
    }

    /// The shape.
    pub fn spec(&self) -> &TinySpec {
        &self.spec
    }

    /// The position table `[max_len, dim]` (learned or sinusoidal), `None` with RoPE.
    pub fn position_table(&self) -> Option<&Tensor> {
        self.pos_table.as_ref()
    }

    fn device(&self) -> &Device {
        self.tok_emb.device()
    }

    /// `cos` and `sin` `[n, head_dim]` of the rotary embedding (each angle twice: the two
    /// halves of a head are rotated as pairs `(x_i, x_{i + hd/2})`, GPT-NeoX's layout).
    fn rope_tables(&self, n: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let hd = self.spec.dim / self.spec.heads;
        let half = hd / 2;
        let mut cos = Vec::with_capacity(n * hd);
        let mut sin = Vec::with_capacity(n * hd);
        for p in 0..n {
            for c in 0..hd {
                let i = (c % half) as f64;
                let angle = p as f64 * ROPE_BASE.powf(-2.0 * i / hd as f64);
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let dt = self.tok_emb.dtype();
        Ok((
            Tensor::from_vec(cos, (n, hd), self.device())?.to_dtype(dt)?,
            Tensor::from_vec(sin, (n, hd), self.device())?.to_dtype(dt)?,
        ))
    }

    /// Splits `[b, n, dim]` into heads `[b, heads, n, head_dim]`, rotated with RoPE.
    fn heads_of(&self, x: &Tensor, rope: Option<&(Tensor, Tensor)>) -> candle_core::Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let h = self.spec.heads;
        let hd = d / h;
        let x = x.reshape((b, n, h, hd))?.transpose(1, 2)?.contiguous()?; // [b, h, n, hd]
        let Some((cos, sin)) = rope else {
            return Ok(x);
        };
        let half = hd / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?; // rotate_half
        x.broadcast_mul(cos)?.add(&rotated.broadcast_mul(sin)?)
    }

    /// Block `layer`'s queries, keys and values `[b, heads, n, head_dim]` for its input `x`
    /// `[b, n, dim]` (LayerNorm applied here; queries and keys rotated with RoPE).
    fn qkv_heads(&self, layer: usize, x: &Tensor) -> candle_core::Result<[Tensor; 3]> {
        let blk = &self.blocks[layer];
        let n = x.dim(1)?;
        let h = blk.ln1.forward(x)?;
        let rope = match self.spec.positions {
            Positions::Rope => Some(self.rope_tables(n)?),
            _ => None,
        };
        Ok([
            self.heads_of(&blk.q.forward(&h)?, rope.as_ref())?,
            self.heads_of(&blk.k.forward(&h)?, rope.as_ref())?,
            self.heads_of(&blk.v.forward(&h)?, None)?,
        ])
    }

    /// Block `layer`'s queries, keys and values for one sequence's input `x` `[n, dim]`, each
    /// `[n, dim]` with the heads side by side (the step view's layout).
    pub fn qkv(&self, layer: usize, x: &Tensor) -> candle_core::Result<[Tensor; 3]> {
        let n = x.dim(0)?;
        let d = self.spec.dim;
        let merge = |t: Tensor| -> candle_core::Result<Tensor> {
            t.transpose(1, 2)?.contiguous()?.reshape((n, d)) // [1, h, n, hd] → [n, dim]
        };
        let [q, k, v] = self.qkv_heads(layer, &x.unsqueeze(0)?)?;
        Ok([merge(q)?, merge(k)?, merge(v)?])
    }

    /// The forward pass on `ids` `[b, n]`: logits `[b, n, vocab]`, each layer's attention
    /// probabilities `[b, heads, n, n]`, and the hidden states `[b, n, dim]` (the embedding,
    /// each block's output but the last, then the final LayerNorm's output, as GPT-2 reports
    /// them).
    pub fn forward_batch(&self, ids: &Tensor) -> candle_core::Result<BatchOutput> {
        let (b, n) = ids.dims2()?;
        let d = self.spec.dim;
        let mut x = self
            .tok_emb
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, n, d))?;
        if let Some(t) = &self.pos_table {
            x = x.broadcast_add(&t.narrow(0, 0, n)?)?;
        }
        let mask = if self.spec.causal {
            let m: Vec<f32> = (0..n)
                .flat_map(|i| (0..n).map(move |j| if j > i { -1e9 } else { 0.0 }))
                .collect();
            Some(Tensor::from_vec(m, (n, n), self.device())?.to_dtype(x.dtype())?)
        } else {
            None
        };
        let hd = d / self.spec.heads;
        let scale = (hd as f64).powf(-0.5);
        let mut hidden = vec![x.clone()];
        let mut attentions = Vec::with_capacity(self.blocks.len());
        for (l, blk) in self.blocks.iter().enumerate() {
            let [q, k, v] = self.qkv_heads(l, &x)?; // [b, h, n, hd]
            let mut scores = (q.matmul(&k.t()?)? * scale)?; // [b, h, n, n]
            if let Some(m) = &mask {
                scores = scores.broadcast_add(m)?;
            }
            let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let ctx = probs
                .matmul(&v)? // [b, h, n, hd]
                .transpose(1, 2)?
                .reshape((b, n, d))?;
            x = (x + blk.o.forward(&ctx)?)?;
            let m = blk
                .fc2
                .forward(&blk.fc1.forward(&blk.ln2.forward(&x)?)?.gelu()?)?;
            x = (x + m)?;
            attentions.push(probs);
            if l + 1 < self.blocks.len() {
                hidden.push(x.clone());
            }
        }
        let x = self.ln_f.forward(&x)?;
        hidden.push(x.clone());
        Ok(BatchOutput {
            logits: self.head.forward(&x)?,
            attentions,
            hidden_states: hidden,
        })
    }

    /// [`Self::forward_batch`] on one sequence, in the shapes of [`ForwardOutput`].
    pub fn forward(&self, ids: &[u32]) -> candle_core::Result<ForwardOutput> {
        let t = Tensor::from_slice(ids, (1, ids.len()), self.device())?;
        let out = self.forward_batch(&t)?;
        let first = |t: &Tensor| t.get(0);
        Ok(ForwardOutput {
            hidden_states: out
                .hidden_states
                .iter()
                .map(first)
                .collect::<candle_core::Result<_>>()?,
            attentions: out
                .attentions
                .iter()
                .map(first)
                .collect::<candle_core::Result<_>>()?,
            logits: Some(first(&out.logits)?),
        })
    }
}

/// [`TinyNet::forward_batch`]'s outputs.
pub struct BatchOutput {
    /// `[b, n, vocab]`.
    pub logits: Tensor,
    /// Per layer `[b, heads, n, n]`.
    pub attentions: Vec<Tensor>,
    /// `[b, n, dim]` each.
    pub hidden_states: Vec<Tensor>,
}

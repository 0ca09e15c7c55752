/// Kiln's own operators, in the `kiln` domain: what the fusion passes produce and what the
/// engines (reference, fast CPU, CUDA) implement. Each is defined by an equivalent standard
/// ONNX subgraph, so the reference kernel for it is obviously correct and every fusion can be
/// checked numerically against the unfused graph.
///
/// Shapes use B = batch, S = sequence length, H = hidden size, K/N = GEMM inner/output size.
public enum KilnOperators {
    /// The operator domain of Kiln's fused operators.
    public static let domain = "kiln"

    /// `LayerNorm(X, gamma, beta?) -> Y`, normalizing over the last axis.
    /// Attribute `epsilon` (float). Equals ONNX `LayerNormalization(axis = -1)`; it exists so
    /// models exported below opset 17 can be fused too.
    public static let layerNorm = "LayerNorm"

    /// `SkipLayerNorm(X, skip, gamma, beta?, bias?) -> (Y, Sum?)` where
    /// `Sum = X + skip (+ bias)` and `Y = LayerNorm(Sum)` over the last axis; attribute
    /// `epsilon`. The optional second output exposes `Sum` when the graph still needs it.
    public static let skipLayerNorm = "SkipLayerNorm"

    /// `Gelu(X) -> Y`; attribute `approximate`: `"none"` (erf form) or `"tanh"`.
    public static let gelu = "Gelu"

    /// `FusedMatMul(A, W, bias?) -> Y` with `A: [..., K]`, `W: [K, N]` (a constant),
    /// `bias: [N]`: `Y = activation(A·W + bias)`. Attribute `activation`: `"none"`, `"gelu"`,
    /// `"gelu_tanh"`, `"relu"` or `"tanh"`. Fast engines pre-pack `W` at build time.
    public static let fusedMatMul = "FusedMatMul"

    /// `Attention(Q, K, V, mask?) -> context` for multi-head self-attention with
    /// `Q, K, V: [B, S, H]` (already projected, heads interleaved as `[B, S, heads, H/heads]`)
    /// and `mask` an additive float mask broadcastable to `[B, heads, S, S]` (0 where a key
    /// may be attended, a large negative number where it may not; exporters build it from
    /// `attention_mask`). Attributes `num_heads` (int) and `scale` (float, usually
    /// `1/sqrt(H/heads)`). Result: `[B, S, H]`, the heads concatenated back. Equivalent to
    /// `softmax(Q·Kᵀ·scale + mask)·V` per head.
    public static let attention = "Attention"

    /// All Kiln operator types.
    public static let all: [String] = [layerNorm, skipLayerNorm, gelu, fusedMatMul, attention]
}

extension KilnOperators {
    /// Optional string attribute on `FusedMatMul` and `Attention`: `"fp32"` (the default when
    /// absent) or `"bf16"`. Set by the precision-assignment pass; it tells an engine which
    /// precision it may compute the node's products in (inputs rounded to bf16, accumulation
    /// in fp32). The reference kernels ignore it: the reference is always fp32.
    public static let precisionAttribute = "precision"

    /// Optional int attribute on `Attention` (default 0). When 1, attention probabilities that
    /// are NaN are replaced by 0 before multiplying by V, exactly as the
    /// `Where(IsNaN(p), 0, p)` guard exporters put after the softmax (a fully masked row with
    /// a `-inf` mask gives a zero context instead of NaN).
    public static let nanToZeroAttribute = "nan_to_zero"

    /// The precisions ``precisionAttribute`` may name.
    public static let precisions: [String] = ["fp32", "bf16"]
}

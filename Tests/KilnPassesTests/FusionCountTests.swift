import Foundation
import KilnCore
import KilnPasses
import Testing

/// What the standard pipeline must fuse in each 2-layer fixture, so a silently broken
/// pattern fails a test. Every fixture has 2 attention blocks, 2 QKV merges and 2 GELUs
/// (absorbed into the FFN GEMM as its activation); the LayerNorm family counts 5 (embedding
/// + 2 per layer). RoBERTa/XLM-R compute position ids per token, so their embedding sum is a
/// same-shape residual add and fuses into a SkipLayerNorm too.
struct ExpectedFusions: Sendable, CustomStringConvertible {
    let fixture: String
    /// kiln::FusedMatMul nodes: per layer QKV + output + 2 FFN, plus heads/pooler/embedding projection.
    let gemms: Int
    let skipLayerNorms: Int
    let layerNorms: Int
    var description: String { fixture }
}

let expectedFusions: [ExpectedFusions] = [
    // 8 encoder GEMMs + intent + slot (joint), + pooler (encoder), ALBERT/ELECTRA + embedding projection.
    .init(fixture: "albert-dynamo-opset18", gemms: 10, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "albert-torchscript-opset14", gemms: 11, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "bert-dynamo-opset18", gemms: 10, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "bert-fp16weights-torchscript-opset17", gemms: 10, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "bert-gelunew-torchscript-opset14", gemms: 10, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "bert-gelutanh-dynamo-opset20", gemms: 10, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "bert-ortbasic-torchscript-opset17", gemms: 10, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "bert-torchscript-opset14", gemms: 10, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "bert-torchscript-opset17", gemms: 9, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "distilbert-dynamo-opset18", gemms: 8, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "distilbert-torchscript-opset14", gemms: 10, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "electra-dynamo-opset18", gemms: 11, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "electra-torchscript-opset17", gemms: 9, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "minilm-dynamo-opset18", gemms: 9, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "minilm-torchscript-opset14", gemms: 10, skipLayerNorms: 4, layerNorms: 1),
    .init(fixture: "roberta-dynamo-opset18", gemms: 9, skipLayerNorms: 5, layerNorms: 0),
    .init(fixture: "roberta-torchscript-opset17", gemms: 10, skipLayerNorms: 5, layerNorms: 0),
    .init(fixture: "xlm-roberta-dynamo-opset18", gemms: 10, skipLayerNorms: 5, layerNorms: 0),
    .init(fixture: "xlm-roberta-torchscript-opset17", gemms: 10, skipLayerNorms: 5, layerNorms: 0),
]

@Suite("Fusion counts per fixture")
struct FusionCountTests {
    @Test("every model fixture has an expectation")
    func everyFixtureCovered() {
        #expect(Set(expectedFusions.map(\.fixture)) == Set(modelFixtureNames))
    }

    @Test("standard pipeline fuses what each fixture holds", arguments: expectedFusions)
    func fusionCounts(_ expected: ExpectedFusions) throws {
        let fixture = modelFixture(expected.fixture)
        let (_, result) = try optimizeFixture(fixture)
        let counts = result.opCounts
        let name = expected.fixture
        #expect(counts["kiln::Attention"] == 2, "\(name): attention blocks")
        #expect(counts["kiln::FusedMatMul", default: 0] == expected.gemms, "\(name): GEMMs")
        #expect(counts["kiln::SkipLayerNorm", default: 0] == expected.skipLayerNorms, "\(name): skip layer norms")
        #expect(counts["kiln::LayerNorm", default: 0] == expected.layerNorms, "\(name): layer norms")
        #expect(result.reports.first { $0.pass == "qkv-fusion" }?.count("QKV projections") == 2, "\(name): QKV merges")
        // GELU: absorbed into the FFN GEMMs, in the model's form.
        let hiddenAct = fixture.manifest["hidden_act"] as? String ?? "gelu"
        let expectedActivation = hiddenAct == "gelu" ? "gelu" : "gelu_tanh"
        let activations = result.graph.nodes.filter { $0.opType == "FusedMatMul" }.compactMap { try? $0.string("activation", default: "none") }
        #expect(activations.filter { $0 == expectedActivation }.count == 2, "\(name): \(activations)")
        #expect(counts["kiln::Gelu"] == nil, "\(name): a GELU was left outside its GEMM")
        // Nothing the fusions should have consumed is left over.
        for op in ["MatMul", "Gemm", "Softmax", "Erf", "Pow", "Sqrt", "ReduceMean", "LayerNormalization", "Gelu", "Transpose"] {
            #expect(counts[op] == nil, "\(name): \(counts[op] ?? 0) \(op) left unfused")
        }
        // Attention nodes carry their head count and the 1/sqrt(head size) scale.
        let config = fixture.manifest["config"] as? [String: Any] ?? [:]
        let hidden = config["hidden_size"] as? Int ?? config["dim"] as? Int ?? 0
        let heads = (fixture.manifest["config"] as? [String: Any])?["num_attention_heads"] as? Int
            ?? (fixture.manifest["config"] as? [String: Any])?["n_heads"] as? Int ?? 0
        for node in result.graph.nodes where node.opType == "Attention" {
            #expect(try node.int("num_heads", default: 0) == Int64(heads), "\(name): num_heads")
            let scale = try node.float("scale", default: 0)
            #expect(abs(scale - 1 / Float(hidden / max(heads, 1)).squareRoot()) < 1e-5, "\(name): scale \(scale)")
        }
    }
}

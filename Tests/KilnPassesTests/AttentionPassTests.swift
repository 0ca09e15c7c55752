import Foundation
import KilnCore
import KilnPasses
import Testing

private let batch = KilnCore.Dimension.symbolic("batch"), seq = KilnCore.Dimension.symbolic("seq")

/// A hand-built self-attention block over `x: [batch, seq, 8]` with 2 heads of 4, written the
/// way the TorchScript eager export writes it: Reshape [0, 0, 2, 4] + Transpose, K transposed
/// with perm `keyPerm`, scores scaled by Mul(0.5), additive mask (or a masked_fill with
/// `Where`), Softmax, context transposed and merged with Reshape [0, 0, 8].
private func attentionGraph(keyPerm: [Int64] = [0, 2, 3, 1], maskedFill: Bool = false, projectWithFusedMatMul: Bool = false, nanGuard: Bool = false) -> Graph {
    var b = GraphBuilder()
    let x = b.input("x", .float32, [batch, seq, .fixed(8)])
    let mask = b.input("mask", .float32, [batch, .fixed(1), .fixed(1), seq])
    func project(_ seed: Int) -> String {
        if projectWithFusedMatMul {
            return b.node("FusedMatMul", [x, b.weights([8, 8], seed: seed), b.weights([8], seed: seed + 10)], ["activation": .string("none")], domain: "kiln")
        }
        return b.node("Add", [b.node("MatMul", [x, b.weights([8, 8], seed: seed)]), b.weights([8], seed: seed + 10)])
    }
    let heads = b.ints([0, 0, 2, 4])
    let q = b.node("Transpose", [b.node("Reshape", [project(1), heads])], ["perm": .ints([0, 2, 1, 3])])
    let k = b.node("Transpose", [b.node("Reshape", [project(2), heads])], ["perm": .ints(keyPerm)])
    let v = b.node("Transpose", [b.node("Reshape", [project(3), heads])], ["perm": .ints([0, 2, 1, 3])])
    let scores = b.node("Mul", [b.node("MatMul", [q, k]), b.scalar(0.5)])
    let masked: String
    if maskedFill {
        let condition = b.node("Less", [mask, b.scalar(-1)])
        masked = b.node("Where", [condition, b.scalar(-Float.greatestFiniteMagnitude), scores])
    } else {
        masked = b.node("Add", [scores, mask])
    }
    var probabilities = b.node("Softmax", [masked], ["axis": .int(-1)])
    if nanGuard { probabilities = b.node("Where", [b.node("IsNaN", [probabilities]), b.scalar(0), probabilities]) }
    let context = b.node("Transpose", [b.node("MatMul", [probabilities, v])], ["perm": .ints([0, 2, 1, 3])])
    let merged = b.node("Reshape", [context, b.ints([0, 0, 8])])
    return b.graph(outputs: [merged])
}

private func attentionFeeds() -> [[String: Tensor]] {
    func mask(_ batch: Int, _ seq: Int, padded: Int) -> Tensor {
        var values = [Float](repeating: 0, count: batch * seq)
        for index in 0..<padded { values[(batch - 1) * seq + seq - 1 - index] = -3.4e38 }
        return try! Tensor(floats: values, shape: [batch, 1, 1, seq])
    }
    return [
        ["x": randomTensor([2, 5, 8], seed: 3), "mask": mask(2, 5, padded: 2)],
        ["x": randomTensor([1, 3, 8], seed: 5), "mask": mask(1, 3, padded: 0)],
    ]
}

@Suite("Attention and QKV fusion")
struct AttentionPassTests {
    @Test("an eager-style block fuses to one kiln::Attention (2 heads, scale 0.5, mask)")
    func fusesEagerBlock() throws {
        var graph = attentionGraph()
        _ = try FusedMatMulPass().run(&graph)
        let (fused, report) = try runChecked(AttentionFusionPass(), on: graph, inputs: attentionFeeds())
        #expect(report.count("attention blocks") == 1 && report.count("masks") == 1)
        let attention = try #require(fused.nodes.first { $0.opType == "Attention" })
        #expect(try attention.int("num_heads", default: 0) == 2)
        #expect(try attention.float("scale", default: 0) == 0.5)
        #expect(attention.inputs[3] == "mask")
        #expect(fused.count("Softmax") == 0 && fused.count("Transpose") == 0)
    }

    @Test("a masked_fill (Where) mask becomes an additive mask")
    func fusesMaskedFill() throws {
        let graph = attentionGraph(maskedFill: true)
        let (fused, report) = try runChecked(AttentionFusionPass(), on: graph, inputs: attentionFeeds())
        #expect(report.count("attention blocks") == 1)
        #expect(fused.count("Softmax") == 0 && fused.count("Where") == 1)
    }

    @Test("the IsNaN guard after softmax is absorbed as nan_to_zero: a fully -inf-masked row gives zeros, as unfused")
    func absorbsNaNGuard() throws {
        let graph = attentionGraph(nanGuard: true)
        var mask = [Float](repeating: 0, count: 10)
        for index in 5..<10 { mask[index] = -.infinity }
        let feeds: [[String: Tensor]] = [["x": randomTensor([2, 5, 8]), "mask": try Tensor(floats: mask, shape: [2, 1, 1, 5])]]
        let (fused, report) = try runChecked(AttentionFusionPass(), on: graph, inputs: feeds)
        #expect(report.count("NaN guards") == 1)
        let attention = try #require(fused.nodes.first { $0.opType == "Attention" })
        #expect(try attention.int("nan_to_zero", default: 0) == 1)
        let values = try allValues(of: fused, inputs: feeds[0])
        #expect(values[fused.outputs[0].name]!.floats[40...].allSatisfy { $0 == 0 })
    }

    @Test("near miss: K not transposed (perm [0, 2, 1, 3]) is not attention and stays unfused")
    func nearMissKeyLayout() throws {
        // Q·K with K as [B, heads, S, d] only type-checks when S == d; feed S = 4.
        let graph = attentionGraph(keyPerm: [0, 2, 1, 3])
        let feeds: [[String: Tensor]] = [["x": randomTensor([2, 4, 8]), "mask": try Tensor(floats: [Float](repeating: 0, count: 8), shape: [2, 1, 1, 4])]]
        let (fused, report) = try runChecked(AttentionFusionPass(), on: graph, inputs: feeds)
        #expect(report.count("attention blocks") == 0)
        #expect(fused.count("Softmax") == 1 && fused.count("Attention") == 0)
        #expect(report.notes.contains { $0.contains("head layouts") })
    }

    @Test("Q/K/V projections merge into one GEMM + Split, bit-identical")
    func qkvFusion() throws {
        var graph = attentionGraph(projectWithFusedMatMul: true)
        _ = try AttentionFusionPass().run(&graph)
        let (fused, report) = try runChecked(QKVFusionPass(), on: graph, inputs: attentionFeeds(), tolerance: 0)
        #expect(report.count("QKV projections") == 1)
        #expect(fused.count("FusedMatMul") == 1 && fused.count("Split") == 1)
        let merged = try #require(fused.nodes.first { $0.opType == "FusedMatMul" })
        #expect(fused.initializers[merged.inputs[1]]?.shape == [8, 24])
    }
}

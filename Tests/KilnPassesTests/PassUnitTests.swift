import Foundation
import KilnCore
import KilnKernels
import KilnPasses
import Testing

private let batch = KilnCore.Dimension.symbolic("batch"), seq = KilnCore.Dimension.symbolic("seq")
private func evaluator(_ opset: Int = 17) -> NodeEvaluator { referenceEvaluator(opset: opset) }
private func feeds(_ name: String, hidden: Int) -> [[String: Tensor]] {
    [[name: randomTensor([2, 5, hidden], seed: 3)], [name: randomTensor([1, 3, hidden], seed: 9)]]
}

@Suite("Folding and cleanup passes")
struct FoldingPassTests {
    @Test("constant folding evaluates Cast of fp16 weights and Constant nodes")
    func constantFolding() throws {
        var b = GraphBuilder()
        let x = b.input("x", .float32, [batch, .fixed(4)])
        let half = b.constant(try Tensor(floats: [0.5, 1.5, -2, 3], shape: [4], dtype: .float16))
        let weight = b.node("Cast", [half], ["to": .int(1)])
        let one = b.node("Constant", [], ["value": .tensor(.scalar(Float(1)))])
        let shifted = b.node("Add", [weight, one])
        let y = b.node("Mul", [x, shifted])
        let (graph, report) = try runChecked(ConstantFoldingPass(evaluate: evaluator()), on: b.graph(outputs: [y]), inputs: [["x": randomTensor([3, 4])]])
        #expect(report.count("constants") == 3)
        #expect(graph.nodes.map(\.opType) == ["Mul"])
    }

    @Test("shape folding rewrites Shape→Gather→Concat Reshape targets to [0, 0, 4, 2] and [-1, 0, 8]")
    func shapeFolding() throws {
        var b = GraphBuilder()
        let x = b.input("x", .float32, [batch, seq, .fixed(8)])
        let shape = b.node("Shape", [x])
        let first = b.node("Unsqueeze", [b.node("Gather", [shape, b.constant(.scalar(Int64(0)))], ["axis": .int(0)]), b.ints([0])])
        let second = b.node("Unsqueeze", [b.node("Gather", [shape, b.constant(.scalar(Int64(1)))], ["axis": .int(0)]), b.ints([0])])
        let split = b.node("Reshape", [x, b.node("Concat", [first, second, b.ints([4]), b.ints([2])], ["axis": .int(0)])])
        let merged = b.node("Reshape", [split, b.node("Concat", [b.ints([-1]), second, b.ints([8])], ["axis": .int(0)])])
        let hidden = b.node("Gather", [shape, b.constant(.scalar(Int64(2)))], ["axis": .int(0)])
        let y = b.node("Add", [merged, b.node("Cast", [hidden], ["to": .int(1)])])
        var (graph, report) = try runChecked(ShapeFoldingPass(evaluate: evaluator()), on: b.graph(outputs: [y]), inputs: feeds("x", hidden: 8))
        #expect(report.count("reshape targets") == 2)
        _ = try DeadCodeEliminationPass().run(&graph)
        #expect(graph.count("Shape") == 0 && graph.count("Concat") == 0 && graph.count("Gather") == 0)
        let targets = graph.nodes.filter { $0.opType == "Reshape" }.map { graph.initializers[$0.inputs[1]]!.ints }
        #expect(targets == [[0, 0, 4, 2], [-1, 0, 8]])
    }

    @Test("dead-code elimination removes unread nodes and initializers, keeps outputs")
    func deadCode() throws {
        var b = GraphBuilder()
        let x = b.input("x", .float32, [batch, .fixed(4)])
        _ = b.node("Mul", [b.node("Sqrt", [x]), b.weights([4])])
        let y = b.node("Relu", [x])
        let (graph, report) = try runChecked(DeadCodeEliminationPass(), on: b.graph(outputs: [y]), inputs: [["x": randomTensor([2, 4])]])
        #expect(graph.nodes.map(\.opType) == ["Relu"])
        #expect(report.count("dead nodes") == 2 && report.count("unused initializers") == 1)
    }

    @Test("CSE merges identical nodes and constants but never a graph output")
    func commonSubexpressions() throws {
        var b = GraphBuilder()
        let x = b.input("x", .float32, [batch, .fixed(4)])
        let left = b.node("Mul", [b.node("Sqrt", [x]), b.scalar(2)])
        let right = b.node("Mul", [b.node("Sqrt", [x]), b.scalar(2)])
        let y = b.node("Add", [left, right])
        let z = b.node("Relu", [x])
        let w = b.node("Relu", [x])
        var (graph, report) = try runChecked(CommonSubexpressionEliminationPass(), on: b.graph(outputs: [y, z, w]), inputs: [["x": randomTensor([2, 4])]])
        #expect(report.count("duplicate nodes") == 2)
        #expect(report.count("duplicate constants") == 1)
        _ = try DeadCodeEliminationPass().run(&graph)
        #expect(graph.count("Sqrt") == 1 && graph.count("Mul") == 1 && graph.count("Relu") == 2)
    }

    @Test("validator names a value nothing produces")
    func validatorCatchesMissingProducer() {
        var b = GraphBuilder()
        let x = b.input("x", .float32, [batch, .fixed(4)])
        let y = b.node("Add", [x, "nowhere"])
        #expect(throws: KilnError.self) { try GraphValidator.validate(b.graph(outputs: [y])) }
    }
}

@Suite("Fusion passes on hand-built graphs")
struct FusionPassTests {
    /// x ─► decomposed LayerNorm over the last axis (optionally Mul(d, d) for the square).
    private func decomposedLayerNorm(_ b: inout GraphBuilder, _ x: String, axis: Int64 = -1, squareWithMul: Bool = false) -> String {
        let mean = b.node("ReduceMean", [x], ["axes": .ints([axis])])
        let deviation = b.node("Sub", [x, mean])
        let square = squareWithMul ? b.node("Mul", [deviation, deviation]) : b.node("Pow", [deviation, b.scalar(2)])
        let variance = b.node("ReduceMean", [square], ["axes": .ints([axis])])
        let root = b.node("Sqrt", [b.node("Add", [variance, b.scalar(1e-12)])])
        let normalized = b.node("Div", [deviation, root])
        return b.node("Add", [b.node("Mul", [normalized, b.weights([8], seed: 4)]), b.weights([8], seed: 5)])
    }

    @Test("decomposed LayerNorm (Pow or Mul square) and LayerNormalization fuse to kiln::LayerNorm")
    func layerNorm() throws {
        var b = GraphBuilder(opset: 17)
        let x = b.input("x", .float32, [batch, seq, .fixed(8)])
        let first = decomposedLayerNorm(&b, x)
        let second = decomposedLayerNorm(&b, first, squareWithMul: true)
        let y = b.node("LayerNormalization", [second, b.weights([8], seed: 6), b.weights([8], seed: 7)], ["axis": .int(-1), "epsilon": .float(1e-5)])
        let (graph, report) = try runChecked(LayerNormFusionPass(), on: b.graph(outputs: [y]), inputs: feeds("x", hidden: 8))
        #expect(report.count("decomposed layer norms") == 2 && report.count("LayerNormalization ops") == 1)
        #expect(graph.nodes.allSatisfy { $0.opType == "LayerNorm" })
    }

    @Test("near miss: a mean over a non-last axis is left alone")
    func layerNormNearMiss() throws {
        var b = GraphBuilder(opset: 17)
        let x = b.input("x", .float32, [batch, seq, .fixed(8)])
        let y = decomposedLayerNorm(&b, x, axis: 1)
        let (graph, report) = try runChecked(LayerNormFusionPass(), on: b.graph(outputs: [y]), inputs: [["x": randomTensor([2, 8, 8])]])
        #expect(report.count("decomposed layer norms") == 0)
        #expect(graph.count("LayerNorm") == 0 && graph.count("ReduceMean") == 2)
    }

    @Test("GELU: erf forms in two arrangements, tanh with Pow and with Mul, and the ONNX op")
    func gelu() throws {
        var b = GraphBuilder(opset: 20)
        let x = b.input("x", .float32, [batch, seq, .fixed(8)])
        // x * 0.5 * (1 + erf(x / √2)) as Mul(Mul(x, e), 0.5)
        let e1 = b.node("Add", [b.node("Erf", [b.node("Div", [x, b.scalar(1.4142135)])]), b.scalar(1)])
        let g1 = b.node("Mul", [b.node("Mul", [x, e1]), b.scalar(0.5)])
        // 0.5 * (1 + erf(x · 1/√2)) then · x
        let e2 = b.node("Add", [b.scalar(1), b.node("Erf", [b.node("Mul", [g1, b.scalar(0.70710678)])])])
        let g2 = b.node("Mul", [g1, b.node("Mul", [b.scalar(0.5), e2])])
        // tanh with Pow: Mul(x*0.5, 1 + tanh(...))
        let cube = b.node("Pow", [g2, b.scalar(3)])
        let inner = b.node("Mul", [b.node("Add", [g2, b.node("Mul", [cube, b.scalar(0.044715)])]), b.scalar(0.7978846)])
        let g3 = b.node("Mul", [b.node("Mul", [g2, b.scalar(0.5)]), b.node("Add", [b.node("Tanh", [inner]), b.scalar(1)])])
        // tanh with Mul(x, Mul(x, x)), arranged as Mul(0.5, Mul(x, 1 + tanh))
        let cube2 = b.node("Mul", [g3, b.node("Mul", [g3, g3])])
        let inner2 = b.node("Mul", [b.scalar(0.7978846), b.node("Add", [g3, b.node("Mul", [b.scalar(0.044715), cube2])])])
        let g4 = b.node("Mul", [b.scalar(0.5), b.node("Mul", [g3, b.node("Add", [b.scalar(1), b.node("Tanh", [inner2])])])])
        let y = b.node("Gelu", [g4], ["approximate": .string("tanh")])
        let (graph, report) = try runChecked(GeluFusionPass(), on: b.graph(outputs: [y]), inputs: feeds("x", hidden: 8))
        #expect(report.count("erf GELUs") == 2 && report.count("tanh GELUs") == 2 && report.count("Gelu ops") == 1)
        #expect(graph.nodes.map { "\($0.domain)::\($0.opType)" } == [String](repeating: "kiln::Gelu", count: 5))
    }

    @Test("near miss: erf of x/1.5 is not a GELU")
    func geluNearMiss() throws {
        var b = GraphBuilder()
        let x = b.input("x", .float32, [batch, .fixed(8)])
        let e = b.node("Add", [b.node("Erf", [b.node("Div", [x, b.scalar(1.5)])]), b.scalar(1)])
        let y = b.node("Mul", [b.node("Mul", [x, e]), b.scalar(0.5)])
        let (graph, report) = try runChecked(GeluFusionPass(), on: b.graph(outputs: [y]), inputs: [["x": randomTensor([2, 8])]])
        #expect(report.count("erf GELUs") == 0 && graph.count("Erf") == 1)
    }

    @Test("MatMul + bias + GELU and Gemm(transB) + Tanh fuse to FusedMatMul; a non-constant weight does not")
    func fusedMatMul() throws {
        var b = GraphBuilder()
        let x = b.input("x", .float32, [batch, seq, .fixed(8)])
        let hidden = b.node("Add", [b.weights([16], seed: 2), b.node("MatMul", [x, b.weights([8, 16], seed: 1)])])
        let activated = b.node("Gelu", [hidden], ["approximate": .string("none")], domain: "kiln")
        let first = b.node("Gather", [activated, b.constant(.scalar(Int64(0)))], ["axis": .int(1)])
        let pooled = b.node("Tanh", [b.node("Gemm", [first, b.weights([4, 16], seed: 3), b.weights([4], seed: 4)], ["transB": .int(1)])])
        let dynamic = b.node("MatMul", [x, b.node("Transpose", [x], ["perm": .ints([0, 2, 1])])])
        let (graph, report) = try runChecked(FusedMatMulPass(), on: b.graph(outputs: [pooled, dynamic]), inputs: feeds("x", hidden: 8))
        #expect(report.count("matmuls") == 2 && report.count("biases") == 2 && report.count("activations") == 2)
        let fused = graph.nodes.filter { $0.opType == "FusedMatMul" }.map { try? $0.string("activation", default: "") }
        #expect(fused == ["gelu", "tanh"])
        #expect(graph.count("MatMul") == 1)
    }

    @Test("residual Add + LayerNorm fuses; a broadcasting add does not")
    func skipLayerNorm() throws {
        var b = GraphBuilder()
        let x = b.input("x", .float32, [batch, seq, .fixed(8)])
        let position = b.input("position", .float32, [.fixed(1), seq, .fixed(8)])
        let embedded = b.node("LayerNorm", [b.node("Add", [x, position]), b.weights([8], seed: 1)], ["epsilon": .float(1e-5)], domain: "kiln")
        let projected = b.node("FusedMatMul", [embedded, b.weights([8, 8], seed: 2)], ["activation": .string("none")], domain: "kiln")
        let residual = b.node("Add", [projected, embedded])
        let y = b.node("LayerNorm", [residual, b.weights([8], seed: 3), b.weights([8], seed: 4)], ["epsilon": .float(1e-5)], domain: "kiln")
        let z = b.node("Relu", [residual])
        let feeds: [[String: Tensor]] = [["x": randomTensor([2, 5, 8]), "position": randomTensor([1, 5, 8], seed: 11)]]
        let (graph, report) = try runChecked(SkipLayerNormFusionPass(), on: b.graph(outputs: [y, z]), inputs: feeds)
        #expect(report.count("skip layer norms") == 1 && report.count("residual sums as second outputs") == 1)
        #expect(graph.count("SkipLayerNorm") == 1 && graph.count("LayerNorm") == 1 && graph.count("Add") == 1)
    }
}

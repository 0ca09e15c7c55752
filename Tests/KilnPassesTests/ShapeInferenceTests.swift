import Foundation
import KilnCore
import KilnPasses
import Testing

@Suite("Shape inference")
struct ShapeInferenceTests {
    /// Concrete inference (input shapes given) must agree with the shapes and dtypes the
    /// reference executor actually produces, for every value of every model fixture.
    @Test("concrete shapes match executed shapes", arguments: modelFixtureNames)
    func concreteShapesMatchExecution(_ name: String) throws {
        let fixture = modelFixture(name)
        let graph = try fixture.loadGraph()
        for set in fixture.inputSets {
            let inputs = try fixture.tensors(set.inputs)
            let values = try allValues(of: graph, inputs: inputs)
            let types = try ShapeInference(
                graph: graph, inputShapes: inputs.mapValues(\.shape), evaluate: referenceEvaluator(opset: graph.opset))
            for node in graph.nodes {
                for output in node.outputs where !output.isEmpty {
                    let actual = try #require(values[output])
                    let inferred = types[output]
                    #expect(inferred?.shape?.concreteSizes == actual.shape, "\(name) \(set.inputs): \(node.opType) '\(output)' inferred \(inferred?.description ?? "nil"), executed \(actual.signature)")
                    #expect(inferred?.dtype == actual.dtype, "\(name): \(node.opType) '\(output)' dtype \(String(describing: inferred?.dtype)) vs \(actual.dtype)")
                }
            }
        }
    }

    /// Symbolic inference from the declared `[batch, seq]` inputs, bound to each input set's
    /// sizes, must give the executed shapes too (no unknown dimensions on the main path).
    @Test("symbolic shapes evaluate to executed shapes", arguments: modelFixtureNames)
    func symbolicShapesMatchExecution(_ name: String) throws {
        let fixture = modelFixture(name)
        let graph = try fixture.loadGraph()
        let types = try ShapeInference(graph: graph, evaluate: referenceEvaluator(opset: graph.opset))
        for set in fixture.inputSets {
            let inputs = try fixture.tensors(set.inputs)
            let ids = try #require(inputs["input_ids"])
            let bindings = ["batch": ids.shape[0], "seq": ids.shape[1]]
            let values = try allValues(of: graph, inputs: inputs)
            var unknown = 0
            for node in graph.nodes {
                for output in node.outputs where !output.isEmpty {
                    let actual = try #require(values[output])
                    guard let shape = types.shape(of: output) else { unknown += 1; continue }
                    if shape.contains(where: \.isUnknown) { unknown += 1; continue }
                    #expect(shape.map { $0.evaluated(bindings) } == actual.shape.map { Optional($0) }, "\(name): \(node.opType) '\(output)' inferred \(shape.symbolicDescription), executed \(actual.signature)")
                }
            }
            // Only mask-building index arithmetic (Range over a computed bound) may stay unknown.
            #expect(unknown <= 12, "\(name): \(unknown) values with unknown shapes")
        }
    }

    @Test("symbolic dims: products, exact quotients, unlike sums are unknown")
    func symbolicArithmetic() {
        let batch = SymbolicDim(symbol: "batch"), seq = SymbolicDim(symbol: "seq")
        let product = batch * SymbolicDim(12) * seq
        #expect(product.description == "12*batch*seq")
        #expect(product.dividedExactly(by: seq * SymbolicDim(4)) == SymbolicDim(3) * batch)
        #expect(product.dividedExactly(by: SymbolicDim(5)) == nil)
        #expect(batch.adding(seq) == nil)
        #expect(batch.adding(batch) == SymbolicDim(2) * batch)
        #expect(product.evaluated(["batch": 2, "seq": 7]) == 168)
    }
}

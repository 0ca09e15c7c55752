import Foundation
import KilnCUDA
import KilnCore
import KilnONNX
import KilnRuntime

/// Opens what the user named: an ONNX model or a `.kiln` plan.
enum ModelLoading {
    /// A loaded model: its graph and, for plans, the plan header.
    struct Loaded {
        var graph: Graph
        var planHeader: PlanHeader?
    }

    static func isPlan(_ path: String) -> Bool { path.hasSuffix(".kiln") }

    static func load(_ path: String, checksOperatorCoverage: Bool = true) throws -> Loaded {
        let url = URL(fileURLWithPath: path)
        if isPlan(path) {
            if try PlanFile.readHeader(url).target.kind == CUDAPlanTarget.kind {
                let plan = try PlanFile.readForDevice(url, kind: CUDAPlanTarget.kind)
                return Loaded(graph: plan.graph, planHeader: plan.header)
            }
            let plan = try PlanFile.read(url)
            return Loaded(graph: plan.graph, planHeader: plan.header)
        }
        return Loaded(graph: try ONNXImporter(checksOperatorCoverage: checksOperatorCoverage).load(url), planHeader: nil)
    }

    /// The engine that runs `loaded`: the compiled CPU engine for a plan, the reference
    /// executor (exact, slow: the yardstick) for an ONNX model.
    static func engine(for loaded: Loaded) throws -> any InferenceEngine {
        if let header = loaded.planHeader, header.target.kind == CUDAPlanTarget.kind {
            return try CUDASupport.engine(graph: loaded.graph, header: header)
        }
        if loaded.planHeader != nil { return try Engine(graph: loaded.graph) }
        return try ReferenceExecutor(graph: loaded.graph)
    }
}

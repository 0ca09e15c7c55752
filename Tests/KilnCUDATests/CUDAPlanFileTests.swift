import Foundation
import KilnCore
import Testing

@testable import KilnCUDA

/// CUDA plans on disk: the CPU loader refuses them with a clear message, the device reader takes
/// them back with their GPU metadata, and refuses plans of another target kind.
@Suite struct CUDAPlanFileTests {
    func plan(kind: String, architecture: String) throws -> Plan {
        let graph = Graph(
            name: "g", inputs: [ValueInfo(name: "x", dtype: .float32, shape: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, shape: [.fixed(2)])],
            initializers: ["w": try Tensor(floats: [1, 2], shape: [2])],
            nodes: [Node(name: "add", opType: "Add", domain: "", inputs: ["x", "w"], outputs: ["y"], attributes: [:])],
            opsetImports: ["": 17])
        let header = PlanHeader(
            kilnVersion: "0.1.0", target: PlanTarget(kind: kind, architecture: architecture, requiredFeatures: []), precision: "fp16",
            sourceModelSHA256: "0", sourceModelName: "m.onnx", inputs: graph.inputs, outputs: graph.outputs,
            buildOptions: ["cuda_device": "NVIDIA H100 80GB HBM3", "cuda_driver": "13000", "cublaslt": "130000", "nvrtc": "13.0"],
            createdAt: "2026-11-25T00:00:00Z")
        return Plan(header: header, graph: graph)
    }

    @Test func cudaPlansRoundTripThroughTheDeviceReader() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cuda-plan-\(UUID().uuidString).kiln")
        defer { try? FileManager.default.removeItem(at: url) }
        try PlanFile.write(try plan(kind: "cuda", architecture: "sm_90"), to: url)
        #expect(throws: KilnError.self) { try PlanFile.read(url) }  // the CPU engine's loader says rebuild
        let loaded = try PlanFile.readForDevice(url, kind: CUDAPlanTarget.kind)
        #expect(loaded.header.target.architecture == "sm_90")
        #expect(loaded.header.buildOptions["cublaslt"] == "130000")
        #expect(loaded.graph.initializers["w"]?.floats == [1, 2])
    }

    @Test func deviceReaderRefusesCPUPlans() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cpu-plan-\(UUID().uuidString).kiln")
        defer { try? FileManager.default.removeItem(at: url) }
        try PlanFile.write(try plan(kind: "cpu", architecture: "avx2"), to: url)
        do {
            _ = try PlanFile.readForDevice(url, kind: CUDAPlanTarget.kind)
            Issue.record("a CPU plan was accepted as a CUDA plan")
        } catch let error as KilnError {
            #expect(error.description.contains("--target cuda"))
        }
    }
}

import Foundation
import KilnCore
import KilnRuntime
import Synchronization
import Testing

@testable import KilnServe

/// A request's hint reaches the engine before its run (so the CPU pool's workers wake while the
/// request is tokenized and queued), through the DescribedEngine wrapper too.
@Suite struct RequestHintTests {
    /// Records "hint" and "run" in the order they happen.
    final class HintRecordingEngine: InferenceEngine, @unchecked Sendable {
        let base: any InferenceEngine
        let events = Mutex<[String]>([])
        init(base: any InferenceEngine) { self.base = base }
        var inputSignature: [ValueInfo] { base.inputSignature }
        var outputSignature: [ValueInfo] { base.outputSignature }
        func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
            events.withLock { $0.append("run") }
            return try base.run(inputs)
        }
        func prepareForRequest() { events.withLock { $0.append("hint") } }
    }

    @Test("ServedModel.infer hints the engine (through DescribedEngine) before the batch runs")
    func hintPrecedesRun() async throws {
        let directory = try ModelRepository(root: ServeFixtures.root).directory(name: ServeFixtures.model, version: 1)
        let recording = HintRecordingEngine(base: try ServeFixtures.engineFactory(directory))
        var settings = ModelSettings()
        settings.warmUp = false
        let model = try ServedModel(directory: directory, settings: settings,
                                    engineFactory: { _ in DescribedEngine(recording, precision: "fp32") }, metrics: ServeMetrics())
        let encoded = try model.encoder.encode("book a table for two")
        _ = try await model.infer(encoded.engineInput)
        #expect(recording.events.withLock { $0 } == ["hint", "run"])
        await model.drain(metrics: ServeMetrics())
    }

}

import Foundation
import KilnCore
import KilnRuntime
import Synchronization
import Testing

@testable import KilnServe

/// Warm-up at model load: which shapes run, that they run before the version exists (so before it
/// can report ready), once per distinct engine, not at all when disabled, and that an engine that
/// fails its warm-up fails the load.
@Suite struct EngineWarmUpTests {
    /// Counts the shapes it is run with and the most calls in flight at once; optionally fails.
    final class RecordingEngine: InferenceEngine, @unchecked Sendable {
        let base: any InferenceEngine
        let fails: Bool
        let shapes = Mutex<[[Int]]>([])
        /// Calls in flight now and the most seen.
        let inFlight = Mutex<(now: Int, most: Int)>((0, 0))
        /// Calls of this many rows wait (up to 2 s) for a second call to be in flight, so that a
        /// concurrent pass shows up as 2 and a sequential one as 1 whatever the scheduling.
        let rendezvousRows: Int?
        init(base: any InferenceEngine, fails: Bool = false, rendezvousRows: Int? = nil) {
            self.base = base
            self.fails = fails
            self.rendezvousRows = rendezvousRows
        }
        var inputSignature: [ValueInfo] { base.inputSignature }
        var outputSignature: [ValueInfo] { base.outputSignature }
        func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
            let shape = inputs[EngineInput.inputIdsName]?.shape ?? []
            shapes.withLock { $0.append(shape) }
            inFlight.withLock { $0 = ($0.now + 1, max($0.most, $0.now + 1)) }
            defer { inFlight.withLock { $0.now -= 1 } }
            if let rows = rendezvousRows, shape.first == rows, shapes.withLock({ $0.filter { $0 == shape }.count }) > 1 {
                let deadline = Date().addingTimeInterval(2)
                while inFlight.withLock({ $0.now }) < 2 && Date() < deadline { Thread.sleep(forTimeInterval: 0.001) }
            }
            if fails { throw ServeError.internalError("engine broken on purpose") }
            return try base.run(inputs)
        }
    }

    static func directory() throws -> ModelVersionDirectory {
        try ModelRepository(root: ServeFixtures.root).directory(name: ServeFixtures.model, version: 1)
    }

    @Test("shapes: batch 1 and the max batch, sequence buckets capped at the model's length")
    func shapes() {
        let full = EngineWarmUp.shapes(maxBatch: 16, maxLength: 128)
        #expect(full.map(\.rows) == [1, 1, 1, 1, 16, 16, 16, 16])
        #expect(full.map(\.length) == [8, 16, 32, 64, 8, 16, 32, 64])
        let short = EngineWarmUp.shapes(maxBatch: 1, maxLength: 20)
        #expect(short.map(\.rows) == [1, 1, 1])
        #expect(short.map(\.length) == [8, 16, 20])
    }

    @Test("a loaded version has already run every warm-up shape, once for an engine shared by its instances, then the largest on two threads at once")
    func warmsBeforeTheVersionExists() throws {
        let directory = try Self.directory()
        let shared = RecordingEngine(base: try ServeFixtures.engineFactory(directory), rendezvousRows: 4)
        var settings = ModelSettings()
        settings.instances = 2
        settings.maxBatchSize = 4
        let model = try ServedModel(directory: directory, settings: settings, engineFactory: { _ in shared }, metrics: ServeMetrics())
        defer { Task { await model.drain(metrics: ServeMetrics()) } }
        let shapes = EngineWarmUp.shapes(maxBatch: 4, maxLength: model.card.maxSeqLength).map { [$0.rows, $0.length] }
        let largest = try #require(shapes.last)
        #expect(shared.shapes.withLock { $0 } == shapes + [largest, largest],
                "one pass over the shapes for the shared engine, then the largest once per instance")
        #expect(shared.inFlight.withLock { $0.most } == 2, "the last two calls overlapped")
        #expect(model.warmUpSeconds > 0)
    }

    @Test("each distinct engine instance is warmed; warm_up false runs nothing")
    func distinctInstancesAndDisabled() throws {
        let directory = try Self.directory()
        let made = Mutex<[RecordingEngine]>([])
        let factory: EngineFactory = { directory in
            let engine = RecordingEngine(base: try ServeFixtures.engineFactory(directory))
            made.withLock { $0.append(engine) }
            return engine
        }
        var settings = ModelSettings()
        settings.instances = 2
        let warmed = try ServedModel(directory: directory, settings: settings, engineFactory: factory, metrics: ServeMetrics())
        #expect(made.withLock { $0.map { $0.shapes.withLock(\.count) } } == [8, 8])
        settings.warmUp = false
        made.withLock { $0.removeAll() }
        let cold = try ServedModel(directory: directory, settings: settings, engineFactory: factory, metrics: ServeMetrics())
        #expect(made.withLock { $0.map { $0.shapes.withLock(\.count) } } == [0, 0])
        #expect(cold.warmUpSeconds == 0)
        Task {
            await warmed.drain(metrics: ServeMetrics())
            await cold.drain(metrics: ServeMetrics())
        }
    }

    @Test("an engine that fails its warm-up fails the load with a clear message")
    func failingWarmUpFailsTheLoad() throws {
        let directory = try Self.directory()
        let broken = RecordingEngine(base: try ServeFixtures.engineFactory(directory), fails: true)
        do {
            _ = try ServedModel(directory: directory, settings: ModelSettings(), engineFactory: { _ in broken }, metrics: ServeMetrics())
            Issue.record("the load succeeded with a broken engine")
        } catch let error as ServeError {
            #expect("\(error)".contains("warm-up"), "\(error)")
        }
    }

    @Test("the config file's warm_up, calibration and keep_fp32 keys round-trip")
    func configKeys() throws {
        let json = #"{"warm_up": false, "calibration": "cal/snips.json", "keep_fp32": ["/layers.0/ffn"]}"#
        let settings = try JSONDecoder().decode(ModelSettings.self, from: Data(json.utf8))
        #expect(settings.warmUp == false)
        #expect(settings.calibration == "cal/snips.json")
        #expect(settings.keepFP32 == ["/layers.0/ffn"])
        let again = try JSONDecoder().decode(ModelSettings.self, from: try JSONEncoder().encode(settings))
        #expect(again == settings)
        #expect(try JSONDecoder().decode(ModelSettings.self, from: Data("{}".utf8)).warmUp == true)
    }
}

import Foundation
import HTTPTypes
import HummingbirdTesting
import KilnCore
import KilnRuntime
import NIOCore
import Testing

@testable import KilnServe

/// The batcher alone, with a fake engine call: batch size, delay, queue bound, timeouts, priority.
@Suite("dynamic batcher", .timeLimit(.minutes(2)))
struct DynamicBatcherTests {
    /// Records every batch it runs; answers each item with itself times 10.
    final class Recorder: @unchecked Sendable {
        let lock = NSLock()
        var batches: [[Int]] = []
        let delay: Double
        init(delay: Double = 0) { self.delay = delay }

        func run(_ items: [Int]) -> [Int] {
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            lock.withLock { batches.append(items) }
            return items.map { $0 * 10 }
        }
    }

    @Test("never exceeds max batch size, and every caller gets its own result")
    func maxBatchSize() async throws {
        let recorder = Recorder(delay: 0.01)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 4, maxQueueDelay: 0.05, maxQueueSize: 100, instances: 1)) { _, items in recorder.run(items) }
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for value in 0..<20 { group.addTask { (value, try await batcher.submit(value, timeout: 10).output) } }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        await batcher.shutdown()
        for value in 0..<20 { #expect(results[value] == value * 10) }
        #expect(recorder.batches.allSatisfy { $0.count <= 4 })
        #expect(recorder.batches.contains { $0.count > 1 }, "requests that arrive together share a batch")
        #expect(recorder.batches.flatMap { $0 }.sorted() == Array(0..<20))
    }

    @Test("a token budget caps rows x longest row per batch; short items still fill max batch rows; an oversized item runs alone")
    func tokenBudget() async throws {
        // Items are their own length in tokens.
        let recorder = Recorder(delay: 0.02)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 8, maxQueueDelay: 0.2, maxQueueSize: 100, instances: 1, maxBatchTokens: 64)
        ) { _, items in recorder.run(items) }
        func submitAll(_ lengths: [Int]) async throws -> [Int] {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for length in lengths { group.addTask { try await batcher.submit(length, length: length, timeout: 10).output } }
                return try await group.reduce(into: []) { $0.append($1) }.sorted()
            }
        }
        // Short items: 8 x 4 = 32 tokens, so the row limit, not the budget, closes the batch.
        let short = Array(repeating: 4, count: 11)
        #expect(try await submitAll(short) == short.map { $0 * 10 })
        #expect(recorder.batches.contains { $0.count == 8 }, "short items fill the row limit: \(recorder.batches)")
        // Mixed lengths: no batch over 64 padded tokens, except the 100-token item, which runs alone.
        let mixed = [30, 30, 30, 100] + Array(repeating: 8, count: 6)
        #expect(try await submitAll(mixed) == mixed.sorted().map { $0 * 10 })
        await batcher.shutdown()
        for batch in recorder.batches where batch != [100] {
            #expect(batch.count * (batch.max() ?? 0) <= 64, "batch \(batch) is over the token budget")
            #expect(batch.count <= 8)
        }
        #expect(recorder.batches.contains([100]), "an item over the budget runs alone: \(recorder.batches)")
        #expect(recorder.batches.flatMap { $0 }.sorted() == (short + mixed).sorted())
    }

    @Test("a batch full by tokens runs without waiting for the queue delay")
    func tokenBudgetFullRunsAtOnce() async throws {
        let recorder = Recorder()
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 16, maxQueueDelay: 5, maxQueueSize: 100, instances: 1, maxBatchTokens: 50)
        ) { _, items in recorder.run(items) }
        let start = ContinuousClock.now
        _ = try await batcher.submit(40, length: 40, timeout: 10)
        #expect(ContinuousClock.now - start < .seconds(2), "40 tokens leave no room for another 40-token row")
        await batcher.shutdown()
    }

    @Test("a lone request waits about max queue delay, not forever; a full batch doesn't wait")
    func queueDelay() async throws {
        let recorder = Recorder()
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 8, maxQueueDelay: 0.1, maxQueueSize: 100, instances: 1)) { _, items in recorder.run(items) }
        let start = ContinuousClock.now
        let result = try await batcher.submit(1, timeout: 10)
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(90) && elapsed < .seconds(2), "waited \(elapsed)")
        #expect(result.queueSeconds >= 0.09)

        let full = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 1, maxQueueDelay: 5, maxQueueSize: 100, instances: 1)) { _, items in recorder.run(items) }
        let fullStart = ContinuousClock.now
        _ = try await full.submit(1, timeout: 10)
        #expect(ContinuousClock.now - fullStart < .seconds(2), "a full batch runs at once")
        await batcher.shutdown()
        await full.shutdown()
    }

    @Test("a full queue refuses at once with queueFull and a Retry-After")
    func queueFull() async throws {
        let recorder = Recorder(delay: 0.3)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 1, maxQueueDelay: 0, maxQueueSize: 2, instances: 1)) { _, items in recorder.run(items) }
        let outcomes = await withTaskGroup(of: Result<Int, any Error>.self) { group in
            for value in 0..<8 {
                group.addTask { await Result { try await batcher.submit(value, timeout: 30).output } }
                try? await Task.sleep(for: .milliseconds(10))
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        await batcher.shutdown()
        let refused = outcomes.compactMap { outcome -> Int? in
            if case .failure(ServeError.queueFull(let seconds)) = outcome { return seconds }
            return nil
        }
        #expect(refused.count >= 4, "\(outcomes)")
        #expect(refused.allSatisfy { $0 >= 1 })
        #expect(outcomes.filter { if case .success = $0 { true } else { false } }.count >= 2)
    }

    @Test("a request that waits past its timeout fails with timedOut and is not run")
    func timeout() async throws {
        let recorder = Recorder(delay: 0.3)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 1, maxQueueDelay: 0, maxQueueSize: 10, instances: 1)) { _, items in recorder.run(items) }
        async let slow = batcher.submit(1, timeout: 10)
        try await Task.sleep(for: .milliseconds(50))
        await #expect(throws: ServeError.self) { _ = try await batcher.submit(2, timeout: 0.05) }
        #expect(try await slow.output == 10)
        await batcher.shutdown()
        #expect(!recorder.batches.flatMap { $0 }.contains(2))
    }

    @Test("higher priority runs first")
    func priority() async throws {
        let recorder = Recorder(delay: 0.2)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 1, maxQueueDelay: 0, maxQueueSize: 10, instances: 1)) { _, items in recorder.run(items) }
        async let first = batcher.submit(0, timeout: 10)
        try await Task.sleep(for: .milliseconds(50))
        async let low = batcher.submit(1, priority: 0, timeout: 10)
        try await Task.sleep(for: .milliseconds(20))
        async let high = batcher.submit(2, priority: 5, timeout: 10)
        _ = try await (first, low, high)
        await batcher.shutdown()
        #expect(recorder.batches.map { $0[0] } == [0, 2, 1])
    }

    @Test("shutdown finishes queued requests, then refuses new ones")
    func shutdownDrains() async throws {
        let recorder = Recorder(delay: 0.05)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 1, maxQueueDelay: 0, maxQueueSize: 10, instances: 2)) { _, items in recorder.run(items) }
        let pending = (0..<6).map { value in Task { try await batcher.submit(value, timeout: 10).output } }
        try await Task.sleep(for: .milliseconds(10))
        await batcher.shutdown()
        for (value, task) in pending.enumerated() { #expect(try await task.value == value * 10) }
        await #expect(throws: ServeError.self) { _ = try await batcher.submit(9, timeout: 1) }
    }

    @Test("one failing request does not fail the others in its batch")
    func isolation() async throws {
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 8, maxQueueDelay: 0.05, maxQueueSize: 100, instances: 1)) { _, items in
            if items.contains(-1) { throw ServeError.internalError("bad item") }
            return items.map { $0 * 10 }
        }
        let outcomes = await withTaskGroup(of: (Int, Result<Int, any Error>).self) { group in
            for value in [1, 2, -1, 3] { group.addTask { (value, await Result { try await batcher.submit(value, timeout: 10).output }) } }
            return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        await batcher.shutdown()
        for value in [1, 2, 3] { #expect((try? outcomes[value]?.get()) == value * 10) }
        #expect((try? outcomes[-1]?.get()) == nil)
    }
}

/// An engine that sleeps before running, to fill queues in HTTP tests.
struct SlowEngine: InferenceEngine {
    let base: any InferenceEngine
    let seconds: Double
    var inputSignature: [ValueInfo] { base.inputSignature }
    var outputSignature: [ValueInfo] { base.outputSignature }
    func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        Thread.sleep(forTimeInterval: seconds)
        return try base.run(inputs)
    }
}

@Suite("back-pressure over HTTP", .timeLimit(.minutes(2)))
struct BackPressureTests {
    @Test("a full queue answers 429 with Retry-After; a queue timeout answers 503")
    func tooManyRequests() async throws {
        let configuration = ServeFixtures.configuration {
            $0.defaultModelSettings.maxBatchSize = 1
            $0.defaultModelSettings.maxQueueSize = 2
            $0.defaultModelSettings.maxQueueDelayMs = 0
        }
        let slow: EngineFactory = { SlowEngine(base: try ServeFixtures.engineFactory($0), seconds: 0.4) }
        try await withServer(configuration, engineFactory: slow) { _, port in
            let statuses = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String?).self) { group in
                for index in 0..<8 {
                    group.addTask {
                        try await withClient(port: port) { client in
                            let response = try await client.postJSON("/v1/parse", #"{"text": "hello \#(index)"}"#)
                            return (response.status, response.headers[.retryAfter])
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let refused = statuses.filter { $0.0 == .tooManyRequests }
            #expect(!refused.isEmpty, "\(statuses)")
            #expect(refused.allSatisfy { Int($0.1 ?? "") ?? 0 >= 1 }, "Retry-After on every 429")
            #expect(statuses.contains { $0.0 == .ok })
            // Keep the single engine busy, then send a request that may only wait 50 ms.
            let busy = (0..<2).map { index in
                Task { try await withClient(port: port) { try await $0.postJSON("/v1/parse", #"{"text": "busy \#(index)"}"#).status } }
            }
            try await Task.sleep(for: .milliseconds(300))
            let late = try await withClient(port: port) { client in
                try await client.postJSON("/v1/parse", #"{"text": "second", "timeout_ms": 50}"#)
            }
            #expect(late.status == .serviceUnavailable, "\(late.text)")
            for task in busy { #expect(try await task.value == .ok) }
        }
    }
}

@Suite("model cards")
struct ModelCardTests {
    @Test("cards from the training export (string version, null threshold) and the fixtures both load")
    func lenientVersion() throws {
        let exported = #"{"name": "support-en", "version": "1", "intent_labels": ["a", "b"], "multi_label": true, "intent_threshold": 0.5, "slot_labels": ["O", "B-x"], "slot_scheme": "BIO", "max_seq_length": 128}"#
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-card-\(UUID().uuidString).json")
        try Data(exported.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let card = try ModelCard.load(from: url)
        #expect(card.version == "1")
        #expect(card.multiLabel == true)
        let fixture = try ModelCard.load(from: ServeFixtures.root.appendingPathComponent("tiny-nlu/1/model.json"))
        #expect(fixture.version == "1")
        #expect(fixture.slotLabels.first == "O")
    }
}

/// An engine that drops the last row of every output: a broken engine.
struct RowDroppingEngine: InferenceEngine {
    let base: any InferenceEngine
    var inputSignature: [ValueInfo] { base.inputSignature }
    var outputSignature: [ValueInfo] { base.outputSignature }
    func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        try base.run(inputs).mapValues { tensor in
            var shape = tensor.shape
            shape[0] -= 1
            return try Tensor(floats: Array(tensor.floats.prefix(Tensor.elementCount(of: shape))), shape: shape)
        }
    }
}

@Suite("engine failures")
struct EngineFailureTests {
    @Test("a broken engine gives a 500 with a request id, not a crash or another request's answer")
    func brokenEngine() async throws {
        let broken: EngineFactory = { RowDroppingEngine(base: try ServeFixtures.engineFactory($0)) }
        try await withServer(engineFactory: broken) { _, port in
            try await withClient(port: port) { client in
                let response = try await client.postJSON("/v1/parse", #"{"text": "hello"}"#)
                #expect(response.status == .internalServerError)
                #expect((try response.json["error"] as? String ?? "").contains("request id"))
                #expect(try await client.get("/v2/health/live").status == .ok)
            }
        }
    }
}

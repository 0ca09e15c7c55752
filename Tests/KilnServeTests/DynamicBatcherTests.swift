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
        let gate: Gate?
        init(delay: Double = 0, gate: Gate? = nil) {
            self.delay = delay
            self.gate = gate
        }

        func run(_ items: [Int]) -> [Int] {
            gate?.pass()
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            lock.withLock { batches.append(items) }
            return items.map { $0 * 10 }
        }
    }

    @Test("never exceeds max batch size, and every caller gets its own result")
    func maxBatchSize() async throws {
        // The engine is held until all 20 are queued, so batches fill however slowly requests arrive.
        let gate = Gate()
        let recorder = Recorder(delay: 0.01, gate: gate)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 4, maxQueueDelay: 0.05, maxQueueSize: 100, instances: 1)) { _, items in recorder.run(items) }
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for value in 0..<20 { group.addTask { (value, try await batcher.submit(value, timeout: 60).output) } }
            try await waitUntil("all 20 are queued") { batcher.acceptedCount == 20 }
            gate.open()
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        await batcher.shutdown()
        for value in 0..<20 { #expect(results[value] == value * 10) }
        #expect(recorder.batches.allSatisfy { $0.count <= 4 })
        #expect(recorder.batches.contains { $0.count > 1 }, "requests that arrive together share a batch")
        #expect(recorder.batches.flatMap { $0 }.sorted() == Array(0..<20))
    }

    @Test("a token budget caps the real tokens per batch: short items fill max batch rows, one long item does not make short ones count as long, an oversized item runs alone")
    func tokenBudget() async throws {
        // Items are their own length in tokens. Each phase holds the engine with a 1-token blocker
        // while it queues its items, so batches are formed from a known queue, not from arrival timing.
        let gate = Gate()
        let recorder = Recorder(gate: gate)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 8, maxQueueDelay: 0.05, maxQueueSize: 100, instances: 1, maxBatchTokens: 64)
        ) { _, items in recorder.run(items) }
        func phase(_ groups: [[Int]]) async throws -> [Int] {
            gate.close()
            var tasks = [Task { try await batcher.submit(1, tokens: 1, timeout: 60).output }]
            try await waitUntil("the blocker runs") { batcher.busyInstances == 1 }
            for group in groups {  // queued in this group order
                let queued = batcher.queueDepth
                tasks += group.map { length in Task { try await batcher.submit(length, tokens: length, timeout: 60).output } }
                try await waitUntil("\(group) queued") { batcher.queueDepth == queued + group.count }
            }
            gate.open()
            var outputs: [Int] = []
            for task in tasks { outputs.append(try await task.value) }
            return Array(outputs.dropFirst()).sorted()
        }
        // Short items: 8 x 4 = 32 tokens, so the row limit, not the budget, closes the batch.
        let short = Array(repeating: 4, count: 11)
        #expect(try await phase([short]) == short.map { $0 * 10 })
        #expect(recorder.batches.contains { $0.count == 8 }, "short items fill the row limit: \(recorder.batches)")
        // Six short items then a long one: 6 x 4 + 40 = 64 real tokens, one batch of 7 rows
        // (counted padded, as 7 x 40, it would have been split).
        let withLong = Array(repeating: 4, count: 6) + [40]
        #expect(try await phase([Array(withLong.prefix(6)), [40]]) == withLong.map { $0 * 10 })
        #expect(recorder.batches.contains { $0.sorted() == withLong }, "\(recorder.batches)")
        // Mixed lengths: no batch over 64 real tokens, except the 100-token item, which runs alone.
        let mixed = [30, 30, 30, 100] + Array(repeating: 8, count: 6)
        #expect(try await phase([mixed]) == mixed.sorted().map { $0 * 10 })
        await batcher.shutdown()
        for batch in recorder.batches where batch != [100] {
            #expect(batch.reduce(0, +) <= 64, "batch \(batch) is over the token budget")
            #expect(batch.count <= 8)
        }
        #expect(recorder.batches.contains([100]), "an item over the budget runs alone: \(recorder.batches)")
        #expect(recorder.batches.flatMap { $0 }.filter { $0 != 1 }.sorted() == (short + withLong + mixed).sorted())
    }

    @Test("a batch full by tokens runs without waiting for the queue delay")
    func tokenBudgetFullRunsAtOnce() async throws {
        let recorder = Recorder()
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 16, maxQueueDelay: 5, maxQueueSize: 100, instances: 1, maxBatchTokens: 50)
        ) { _, items in recorder.run(items) }
        let result = try await batcher.submit(40, tokens: 40, timeout: 10)
        // The batcher's own queue time (not the wall clock of this task, which a loaded test
        // machine can delay by seconds): far below the 5 s window it would otherwise wait.
        #expect(result.queueSeconds < 2.5, "40 tokens leave no room for another 40-token row (queued \(result.queueSeconds) s)")
        await batcher.shutdown()
    }

    @Test("batch wait always: a lone request waits about max queue delay, not forever; a full batch doesn't wait")
    func queueDelay() async throws {
        let recorder = Recorder()
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 8, maxQueueDelay: 0.1, maxQueueSize: 100, instances: 1, batchWait: .always)
        ) { _, items in recorder.run(items) }
        let start = ContinuousClock.now
        let result = try await batcher.submit(1, timeout: 10)
        let elapsed = ContinuousClock.now - start
        // It waited the window (batcher's clock) and was answered well before its 10 s timeout
        // (the wall-clock bound is loose: under a parallel test run this task resumed 3.4 s late once).
        #expect(result.queueSeconds >= 0.09 && result.queueSeconds < 2, "queued \(result.queueSeconds) s")
        #expect(elapsed >= .milliseconds(90) && elapsed < .seconds(8), "waited \(elapsed)")

        let full = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 1, maxQueueDelay: 5, maxQueueSize: 100, instances: 1, batchWait: .always)
        ) { _, items in recorder.run(items) }
        let fullResult = try await full.submit(1, timeout: 10)
        #expect(fullResult.queueSeconds < 2.5, "a full batch runs at once, not after the 5 s window (queued \(fullResult.queueSeconds) s)")
        await batcher.shutdown()
        await full.shutdown()
    }

    @Test("batch wait when-busy (default): a lone request does not wait for the window of an idle instance")
    func whenBusyLoneRequest() async throws {
        let recorder = Recorder()
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 8, maxQueueDelay: 0.2, maxQueueSize: 100, instances: 1)) { _, items in recorder.run(items) }
        #expect(batcher.settings.batchWait == .whenBusy)
        for value in 0..<3 {
            let result = try await batcher.submit(value, timeout: 10)
            // The recorded queue time, not wall time: a loaded machine slows the hand-off, not the policy.
            #expect(result.queueSeconds < 0.1, "a lone request waited \(result.queueSeconds) s with an idle engine")
            #expect(result.output == value * 10 && result.batchRequests == 1)
        }
        await batcher.shutdown()
    }

    @Test("batch wait when-busy: requests that arrive while every instance is busy form the next batch")
    func whenBusyBatchesBehindBusyInstance() async throws {
        let gate = Gate()
        let recorder = Recorder(gate: gate)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 4, maxQueueDelay: 0.2, maxQueueSize: 100, instances: 1)) { _, items in recorder.run(items) }
        let first = Task { try await batcher.submit(0, timeout: 60) }
        try await waitUntil("the first request runs") { batcher.busyInstances == 1 }
        let rest = (1...6).map { value in Task { try await batcher.submit(value, timeout: 60) } }
        try await waitUntil("six are queued behind the busy instance") { batcher.queueDepth == 6 }
        gate.open()
        #expect(try await first.value.batchRequests == 1)
        var sizes: [Int] = []
        for (offset, task) in rest.enumerated() {
            let result = try await task.value
            #expect(result.output == (offset + 1) * 10)
            sizes.append(result.batchRequests)
        }
        await batcher.shutdown()
        // The six queued requests run as a batch of 4 (the limit) then 2, not one by one (the tasks
        // may reach the queue in any order, so only sizes and membership are checked).
        #expect(recorder.batches.map(\.count) == [1, 4, 2], "\(recorder.batches)")
        #expect(recorder.batches.flatMap { $0 }.sorted() == Array(0...6))
        #expect(sizes.sorted() == [2, 2, 4, 4, 4, 4])
    }

    @Test("preferred batch sizes: eleven queued requests run as 8 then 3 (the largest preferred size reached, then the rest)")
    func preferredBatchSizes() async throws {
        let gate = Gate()
        let recorder = Recorder(gate: gate)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 16, maxQueueDelay: 0.2, maxQueueSize: 100, instances: 1, preferredBatchRows: [4, 8, 32])
        ) { _, items in recorder.run(items) }
        #expect(batcher.settings.preferredBatchRows == [4, 8], "sizes over max batch rows are dropped")
        let first = Task { try await batcher.submit(0, timeout: 60) }
        try await waitUntil("the first request runs") { batcher.busyInstances == 1 }
        let rest = (1...11).map { value in Task { try await batcher.submit(value, timeout: 60) } }
        try await waitUntil("eleven are queued behind the busy instance") { batcher.queueDepth == 11 }
        gate.open()
        _ = try await first.value
        for task in rest { _ = try await task.value }
        await batcher.shutdown()
        #expect(recorder.batches.map(\.count) == [1, 8, 3], "\(recorder.batches)")
    }

    @Test("batch wait when-busy with two instances: a request runs on the idle instance while the other is busy")
    func whenBusyUsesIdleInstance() async throws {
        let gate = Gate()
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 8, maxQueueDelay: 0.2, maxQueueSize: 100, instances: 2)) { _, items in
            if items == [0] { gate.pass() }  // only the first request holds its instance
            return items.map { $0 * 10 }
        }
        let blocked = Task { try await batcher.submit(0, timeout: 60) }
        try await waitUntil("the first request holds one instance") { batcher.busyInstances == 1 }
        let result = try await batcher.submit(1, timeout: 10)
        #expect(result.output == 10 && result.queueSeconds < 0.1, "queued \(result.queueSeconds) s with an idle instance")
        gate.open()
        #expect(try await blocked.value.output == 0)
        await batcher.shutdown()
    }

    @Test("a full queue refuses at once with queueFull and a Retry-After")
    func queueFull() async throws {
        let gate = Gate()
        let recorder = Recorder(gate: gate)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 1, maxQueueDelay: 0, maxQueueSize: 2, instances: 1)) { _, items in recorder.run(items) }
        // One request held in the engine, two queued (the bound): every later one is refused at once.
        var admitted = [Task { try await batcher.submit(0, timeout: 60).output }]
        try await waitUntil("one runs") { batcher.busyInstances == 1 }
        admitted += (1..<3).map { value in Task { try await batcher.submit(value, timeout: 60).output } }
        try await waitUntil("one runs and two wait") { batcher.busyInstances == 1 && batcher.queueDepth == 2 }
        var refused: [Int] = []
        for value in 3..<8 {
            do {
                _ = try await batcher.submit(value, timeout: 60)
                Issue.record("request \(value) was admitted past a full queue")
            } catch ServeError.queueFull(let seconds) {
                refused.append(seconds)
            }
        }
        #expect(refused.count == 5)
        #expect(refused.allSatisfy { $0 >= 1 })
        gate.open()
        for (value, task) in admitted.enumerated() { #expect(try await task.value == value * 10) }
        await batcher.shutdown()
    }

    @Test("a request that waits past its timeout fails with timedOut and is not run")
    func timeout() async throws {
        let gate = Gate()
        let recorder = Recorder(gate: gate)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 1, maxQueueDelay: 0, maxQueueSize: 10, instances: 1)) { _, items in recorder.run(items) }
        async let slow = batcher.submit(1, timeout: 60)
        try await waitUntil("the slow request runs") { batcher.busyInstances == 1 }
        let late = Task { try await batcher.submit(2, timeout: 0.05) }
        try await waitUntil("the late request waits") { batcher.queueDepth == 1 }
        try await Task.sleep(for: .milliseconds(100))  // at least past its 50 ms timeout (longer is as good)
        gate.open()
        await #expect(throws: ServeError.self) { _ = try await late.value }
        #expect(try await slow.output == 10)
        await batcher.shutdown()
        #expect(!recorder.batches.flatMap { $0 }.contains(2))
    }

    @Test("higher priority runs first")
    func priority() async throws {
        let gate = Gate()
        let recorder = Recorder(gate: gate)
        let batcher = DynamicBatcher<Int, Int>(
            settings: .init(maxBatchRows: 1, maxQueueDelay: 0, maxQueueSize: 10, instances: 1)) { _, items in recorder.run(items) }
        async let first = batcher.submit(0, timeout: 60)
        try await waitUntil("the first request runs") { batcher.busyInstances == 1 }
        async let low = batcher.submit(1, priority: 0, timeout: 60)
        try await waitUntil("the low-priority request waits") { batcher.queueDepth == 1 }
        async let high = batcher.submit(2, priority: 5, timeout: 60)
        try await waitUntil("both wait") { batcher.queueDepth == 2 }
        gate.open()
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
        try await waitUntil("all six are queued") { batcher.acceptedCount == 6 }
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

/// Holds engine calls until the test opens it, so a test can keep an engine busy exactly as long as
/// it needs, however slowly the machine runs it.
final class Gate: @unchecked Sendable {
    // @unchecked: `isOpen` is only touched under `condition`.
    private let condition = NSCondition()
    private var isOpen: Bool
    init(open: Bool = false) { isOpen = open }

    /// Blocks the calling (engine) thread until the gate is open.
    func pass() {
        condition.lock()
        while !isOpen { condition.wait() }
        condition.unlock()
    }

    func open() { set(true) }
    func close() { set(false) }
    private func set(_ open: Bool) {
        condition.lock()
        isOpen = open
        condition.broadcast()
        condition.unlock()
    }
}

/// An engine that sleeps (and waits for its gate, if any) before running, to fill queues in HTTP tests.
struct SlowEngine: InferenceEngine {
    let base: any InferenceEngine
    let seconds: Double
    var gate: Gate? = nil
    var inputSignature: [ValueInfo] { base.inputSignature }
    var outputSignature: [ValueInfo] { base.outputSignature }
    func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        gate?.pass()
        Thread.sleep(forTimeInterval: seconds)
        return try base.run(inputs)
    }
}

/// Counts finished tasks.
final class DoneCounter: @unchecked Sendable {
    // @unchecked: `count` is only touched under `lock`.
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

/// Polls `condition` every 10 ms until it holds; fails the test after `timeout` seconds. Tests wait
/// on what the server observably did (a queue depth, a busy engine), never on a fixed sleep, so a
/// loaded CI machine slows them down instead of failing them.
func waitUntil(
    _ what: String, timeout: Double = 60, _ condition: () throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .seconds(timeout)
    while try !condition() {
        guard ContinuousClock.now < deadline else { throw TestFailure("timed out after \(timeout) s waiting until \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

@Suite("back-pressure over HTTP", .timeLimit(.minutes(3)))
struct BackPressureTests {
    @Test("a full queue answers 429 with Retry-After; a queue timeout answers 503")
    func tooManyRequests() async throws {
        let configuration = ServeFixtures.configuration {
            $0.defaultModelSettings.maxBatchSize = 1
            $0.defaultModelSettings.maxQueueSize = 2
            $0.defaultModelSettings.maxQueueDelayMs = 0
        }
        let gate = Gate(open: false)
        let slow: EngineFactory = { SlowEngine(base: try ServeFixtures.engineFactory($0), seconds: 0, gate: gate) }
        try await withServer(configuration, engineFactory: slow) { server, port in
            let batcher = try server.models.resolve(nil).batcher
            // With the engine held: one request runs, two wait (the bound), five are refused.
            let done = DoneCounter()
            let requests = (0..<8).map { index in
                Task {
                    defer { done.increment() }
                    return try await withClient(port: port) { client in
                        let response = try await client.postJSON("/v1/parse", #"{"text": "hello \#(index)"}"#)
                        return (response.status, response.headers[.retryAfter])
                    }
                }
            }
            // (Every request is then running, queued or answered; how many queued before the
            // engine took its first one depends on timing, so the counts are bounds.)
            try await waitUntil("one runs and every other request is queued or answered") {
                batcher.busyInstances == 1 && 1 + batcher.queueDepth + done.value == 8
            }
            gate.open()
            var statuses: [(HTTPResponse.Status, String?)] = []
            for request in requests { statuses.append(try await request.value) }
            let refused = statuses.filter { $0.0 == .tooManyRequests }
            #expect(refused.count >= 5, "\(statuses)")
            #expect(refused.allSatisfy { Int($0.1 ?? "") ?? 0 >= 1 }, "Retry-After on every 429")
            #expect(statuses.filter { $0.0 == .ok }.count == 8 - refused.count)
            // Hold the engine with one request and one queued behind it, then send a request that
            // may only wait 50 ms; release the engine only after that time has passed.
            gate.close()
            let busy = (0..<2).map { index in
                Task { try await withClient(port: port) { try await $0.postJSON("/v1/parse", #"{"text": "busy \#(index)"}"#).status } }
            }
            try await waitUntil("one busy request runs and one waits") { batcher.busyInstances == 1 && batcher.queueDepth == 1 }
            let late = Task {
                try await withClient(port: port) { client in
                    try await client.postJSON("/v1/parse", #"{"text": "second", "timeout_ms": 50}"#)
                }
            }
            try await waitUntil("the late request waits") { batcher.queueDepth == 2 }
            try await Task.sleep(for: .milliseconds(100))  // past its 50 ms timeout (longer is as good)
            gate.open()
            let lateResponse = try await late.value
            #expect(lateResponse.status == .serviceUnavailable, "\(lateResponse.text)")
            for task in busy { #expect(try await task.value == .ok) }
        }
    }
}

@Suite("model cards")
struct ModelCardLoadingTests {
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

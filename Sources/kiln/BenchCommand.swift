import ArgumentParser
import Foundation
import KilnBench

/// `kiln bench URL`: an HTTP load generator for Kiln and its peers (closed or open loop, sweeps, SLA).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test an NLU server over HTTP: closed-loop clients or Poisson arrivals, latency percentiles, SLA attainment.",
        discussion: """
            Closed loop (--concurrency N,...): N clients each send their next request as soon as the last is answered.
            Open loop (--rate R,...): requests arrive as a Poisson process at R/s and are timed from their scheduled
            send time, so a server that falls behind shows its queueing delay. A list of values is a sweep, one run each.
            Texts: --texts FILE (one utterance a line), else the test set matching --model from ../shared/data
            (or $KILN_DATA_DIR). Throughput counts successful answers; SLA attainment is the share of finished
            requests answered 2xx within --sla-ms (errors and timeouts are misses): percent in the table, 0-1 in JSON.
            Examples:
              kiln bench http://127.0.0.1:8080 --concurrency 1,4,16 --duration 20
              kiln bench http://127.0.0.1:8081 --api v2 --model snips --rate 10,20,40 --json out.json
              kiln bench http://127.0.0.1:8082/predictions/snips --api text --concurrency 8
            """)

    @Argument(help: "Server base URL, e.g. http://127.0.0.1:8080 (for --api text: the full endpoint).")
    var url: String

    @Option(help: "Request shape: kiln (POST /v1/parse), v2 (POST /v2/models/MODEL/infer, BYTES text), text (POST URL {\"text\"}).")
    var api: String = "kiln"

    @Option(help: "Model name (required for --api v2; sent in the body for --api kiln; picks the default test set).")
    var model: String?

    @Option(parsing: .upToNextOption, help: "Files of utterances, one a line.")
    var texts: [String] = []

    @Option(help: "Test set from the shared data directory instead of --texts: snips, atis, banking77, nlupp, cais.")
    var dataset: String?

    @Option(help: "Closed loop: comma-separated client counts, e.g. 1,4,16 (the default when --rate is not given).")
    var concurrency: String?

    @Option(help: "Open loop: comma-separated Poisson arrival rates in requests/s, e.g. 10,20,40.")
    var rate: String?

    @Option(help: "Seconds measured per run.")
    var duration: Double = 20

    @Option(help: "Seconds of the same load before each run, not measured.")
    var warmup: Double = 3

    @Option(name: .customLong("sla-ms"), help: "Latency target in milliseconds for SLA attainment.")
    var slaMs: Double = 100

    @Option(help: "Seconds before a request counts as a timeout.")
    var timeout: Double = 10

    @Option(name: .customLong("v2-input"), help: "Name of the v2 BYTES input tensor that carries the text.")
    var v2Input: String = "text"

    @Option(help: "Most connections in open-loop runs.")
    var connections: Int = 256

    @Option(help: "Seed of the Poisson arrival schedule.")
    var seed: UInt64 = 42

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    @Option(help: ArgumentHelp(
        "Also print (and write into the JSON) what finished in every span of this many seconds of a run: requests, errors, P50/P99.",
        discussion: "For soaks: `--rate 650 --duration 600 --interval 60` shows whether the tail latency drifts minute by minute.",
        valueName: "seconds"))
    var interval: Double?

    @Flag(name: .customLong("raw-latencies"), help: "Also write every successful latency (sorted, ms) per run into the JSON (latencies_ms).")
    var rawLatencies = false

    @Flag(help: "No live progress on stderr.")
    var quiet = false

    func validate() throws {
        guard BenchAPI(rawValue: api) != nil else { throw ValidationError("--api must be kiln, v2 or text, not '\(api)'") }
        if concurrency != nil && rate != nil { throw ValidationError("give --concurrency or --rate, not both") }
        guard duration > 0, warmup >= 0, timeout > 0, slaMs > 0, connections > 0 else {
            throw ValidationError("--duration, --timeout, --sla-ms and --connections must be positive and --warmup non-negative")
        }
        if let interval, !(interval > 0) { throw ValidationError("--interval must be a positive number of seconds") }
        _ = try modes()
        if let dataset, Utterances.Dataset(rawValue: dataset) == nil {
            throw ValidationError("--dataset must be one of \(Utterances.Dataset.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        let api = BenchAPI(rawValue: api)!
        let template: RequestTemplate
        let utterances: [String]
        do {
            template = try RequestTemplate(baseURL: url, api: api, model: model)
            utterances = try loadTexts()
        } catch let error as BenchError {
            throw ValidationError(error.description)
        }
        var settings = LoadSettings()
        (settings.duration, settings.warmup, settings.timeout) = (duration, warmup, timeout)
        (settings.slaMilliseconds, settings.openLoopConnections, settings.seed) = (slaMs, connections, seed)
        settings.keepRawLatencies = rawLatencies
        settings.reportInterval = interval
        let bodies = utterances.map { BenchRequestBody.make(text: $0, api: api, model: model, v2Input: v2Input) }
        let generator = LoadGenerator(endpoint: template.endpoint, bodies: bodies, settings: settings)
        let modes = try modes()
        let quiet = quiet
        let header = "kiln bench: \(template.endpoint) (\(utterances.count) texts), \(modes.count) run(s) of "
            + "\(BenchFormat.seconds(warmup)) warm-up + \(BenchFormat.seconds(duration))"
        let results = try Self.runBlocking { try await Self.sweep(generator, modes: modes, quiet: quiet, header: header) }
        if let json {
            let report = BenchReport(url: url, api: api, endpoint: template.endpoint, model: model, texts: utterances.count,
                                     warmupSeconds: warmup, timeoutSeconds: timeout, runs: results)
            try report.jsonData().write(to: URL(fileURLWithPath: json))
        }
        if results.contains(where: { $0.succeeded == 0 }) {
            Self.log("kiln bench: at least one run had no successful request (see error kinds above)")
            throw ExitCode(2)
        }
    }

    /// Checks the server, then runs each load in turn, printing a table row as each finishes.
    private static func sweep(_ generator: LoadGenerator, modes: [LoadMode], quiet: Bool, header: String) async throws -> [RunResult] {
        try await generator.preflight()
        if !quiet { log(header) }
        output(BenchTable.header)
        var results: [RunResult] = []
        for mode in modes {
            let ticker = ProgressLine(mode: mode)
            var progress: (@Sendable (RecorderSnapshot, Double) -> Void)? = nil
            if !quiet { progress = { snapshot, elapsed in ticker.tick(snapshot, elapsed: elapsed) } }
            let result = await generator.run(mode, progress: progress, onInterval: { output(BenchTable.intervalLine($0)) })
            output(BenchTable.row(result))
            if let line = BenchTable.errorLine(result) { output(line) }
            results.append(result)
        }
        return results
    }

    /// The runs of the sweep, in the order given.
    private func modes() throws -> [LoadMode] {
        if let rate {
            return try Self.numbers(rate, option: "--rate").map { .open(rate: $0) }
        }
        let counts = try Self.numbers(concurrency ?? "1,4,16", option: "--concurrency")
        guard counts.allSatisfy({ $0 == $0.rounded() }) else { throw ValidationError("--concurrency takes whole numbers") }
        return counts.map { .closed(concurrency: Int($0)) }
    }

    private static func numbers(_ list: String, option: String) throws -> [Double] {
        let values = list.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("\(option) takes a comma-separated list of positive numbers, e.g. 1,4,16")
        }
        return values.compactMap { $0 }
    }

    private func loadTexts() throws -> [String] {
        if !texts.isEmpty { return try Utterances.lines(ofFiles: texts) }
        let chosen = dataset.flatMap(Utterances.Dataset.init(rawValue:)) ?? .matching(model: model)
        guard let directory = Utterances.dataDirectory() else {
            throw BenchError.noTexts("no shared data directory found (looked for ../shared/data); set KILN_DATA_DIR or pass --texts FILE")
        }
        return try Utterances.load(chosen, from: directory)
    }

    /// A line on stdout, written at once (not buffered) so the table grows as runs finish.
    static func output(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func log(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Runs async work from this synchronous command and waits for it; a ``BenchError`` becomes a clear
    /// message and exit status 1.
    private static func runBlocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        let outcome = BlockingOutcome<T>()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { outcome.result = .success(try await work()) } catch { outcome.result = .failure(error) }
            done.signal()
        }
        done.wait()
        do {
            return try outcome.result!.get()
        } catch let error as BenchError {
            log("kiln bench: \(error)")
            throw ExitCode.failure
        }
    }
}

/// Carries an async result back to the waiting synchronous command.
private final class BlockingOutcome<T: Sendable>: @unchecked Sendable {
    // @unchecked: written once by the task before the semaphore is signalled, read after the wait.
    var result: Result<T, any Error>?
}

/// The once-a-second progress line on stderr: elapsed, sent, done, errors, current rate, P99 so far.
private final class ProgressLine: @unchecked Sendable {
    // @unchecked: `lastDone` and `lastElapsed` are touched only by the one reporter task of a run.
    private let mode: LoadMode
    private var lastDone = 0
    private var lastElapsed = 0.0

    init(mode: LoadMode) { self.mode = mode }

    func tick(_ snapshot: RecorderSnapshot, elapsed: Double) {
        let window = max(elapsed - lastElapsed, 1e-3)
        let currentRate = Double(snapshot.done - lastDone) / window
        (lastDone, lastElapsed) = (snapshot.done, elapsed)
        BenchCommand.log("[\(mode.label)] " + String(
            format: "%5.1fs sent %d done %d errors %d rps %.1f p99 %.1f ms",
            elapsed, snapshot.sent, snapshot.done, snapshot.errors, currentRate, snapshot.latency.p99))
    }
}

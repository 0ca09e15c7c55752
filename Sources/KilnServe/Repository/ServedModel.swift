import Foundation
import KilnCore
import KilnRuntime
import KilnText

/// One loaded model version, ready to serve: its card, its pipeline stages (encoder, batcher with
/// N engine instances, decoder) and its signature. Immutable once built; replaced, never changed,
/// on reload.
public final class ServedModel: Sendable {
    /// The model's name.
    public let name: String
    /// The version.
    public let version: Int
    /// The model card.
    public let card: ModelCard
    /// Where it was loaded from.
    public let directory: ModelVersionDirectory
    /// The tokenize stage.
    public let encoder: TextEncoder
    /// The decode stage.
    public let decoder: NLUResultDecoder
    /// The engine's inputs.
    public let inputSignature: [ValueInfo]
    /// The engine's outputs.
    public let outputSignature: [ValueInfo]
    /// The settings it was loaded with.
    public let settings: ModelSettings
    /// The queue + batch stages.
    let batcher: DynamicBatcher<EngineInput, [String: Tensor]>
    /// The first engine instance: where ``prepareForRequest()`` sends its hint.
    private let firstInstance: any InferenceEngine

    /// The version as a string, for labels and responses.
    public var versionString: String { String(version) }
    /// The precision the engine runs at: what the engine factory reports (``DescribedEngine``),
    /// else what the card declares (fp32 by default).
    public let precision: String
    /// Why the engine runs at `precision` and not at the precision the server was asked for
    /// (e.g. `--precision int8` for a model without a calibration cache); nil when it does not differ.
    public let precisionNote: String?
    /// The precision the server was asked for, when the engine runs at another.
    public let requestedPrecision: String?
    /// Seconds the warm-up run took at load (0 when disabled).
    public let warmUpSeconds: Double

    /// Loads a version: reads the card and tokenizer, builds `settings.instances` engines, starts the batcher.
    /// - Parameters:
    ///   - directory: the version on disk.
    ///   - settings: batching and instance settings.
    ///   - engineFactory: builds each engine instance.
    ///   - metrics: where the batcher reports.
    /// - Throws: ``ServeError/modelLoadFailed(_:)`` saying what is wrong.
    public init(directory: ModelVersionDirectory, settings: ModelSettings, engineFactory: EngineFactory, metrics: ServeMetrics) throws {
        name = directory.name
        version = directory.version
        self.directory = directory
        self.settings = settings
        card = try ModelCard.load(from: directory.cardURL)
        let tokenizer: WordPieceTokenizer
        do { tokenizer = try WordPieceTokenizer(contentsOf: directory.tokenizerURL) } catch {
            throw ServeError.modelLoadFailed("\(directory.name)/\(directory.version)/tokenizer.json: \(error)")
        }
        encoder = TextEncoder(tokenizer: tokenizer, maxLength: card.maxSeqLength)
        decoder = NLUResultDecoder(card: card)
        var engines: [any InferenceEngine] = []
        for _ in 0..<max(1, settings.instances) {
            do { engines.append(try engineFactory(directory)) } catch {
                throw ServeError.modelLoadFailed("\(directory.name)/\(directory.version): cannot build the engine: \(error)")
            }
        }
        let described = engines[0] as? DescribedEngine
        precision = described?.precision ?? card.precision ?? "fp32"
        requestedPrecision = described?.requestedPrecision
        precisionNote = described?.note
        inputSignature = engines[0].inputSignature
        outputSignature = engines[0].outputSignature
        try Self.checkSignature(inputSignature, outputSignature, card: card, model: "\(directory.name)/\(directory.version)")
        let assembler = BatchAssembler(
            padId: Int64(tokenizer.padding?.padId ?? tokenizer.id(forToken: "[PAD]") ?? 0),
            inputSignature: inputSignature, outputSignature: outputSignature)
        do {
            warmUpSeconds = settings.warmUp
                ? try EngineWarmUp.run(engines, encoder: encoder, assembler: assembler, maxBatch: settings.maxBatchSize) : 0
        } catch {
            throw ServeError.modelLoadFailed("\(directory.name)/\(directory.version): the engine failed its warm-up run: \(error)")
        }
        let (modelName, versionString) = (directory.name, String(directory.version))
        let observer = BatcherObserver(
            queueDepthChanged: { metrics.setQueueDepth(model: modelName, version: versionString, depth: $0) },
            batchCompleted: { _, _, _ in })
        let batcherSettings = BatcherSettings(
            maxBatchRows: settings.maxBatchSize, maxQueueDelay: settings.maxQueueDelayMs / 1000,
            maxQueueSize: settings.maxQueueSize, instances: engines.count, maxBatchTokens: settings.maxBatchTokens,
            batchWait: settings.batchWait, preferredBatchRows: settings.preferredBatchSizes)
        let instances = engines
        firstInstance = engines[0]
        batcher = DynamicBatcher(settings: batcherSettings, observer: observer) { instance, inputs in
            let rows = inputs.reduce(0) { $0 + $1.rows }
            let tokens = inputs.reduce(0) { $0 + $1.tokens }
            metrics.recordBatch(model: modelName, version: versionString, requests: inputs.count, rows: rows, tokens: tokens)
            return try assembler.run(inputs, on: instances[instance])
        }
        metrics.setModelLoaded(model: name, version: versionString, precision: precision, loaded: true)
        if let requestedPrecision {
            metrics.setPrecisionFallback(model: name, version: versionString, requested: requestedPrecision, served: precision, active: true)
        }
    }

    private static func checkSignature(_ inputs: [ValueInfo], _ outputs: [ValueInfo], card: ModelCard, model: String) throws {
        for name in [EngineInput.inputIdsName, EngineInput.attentionMaskName, EngineInput.tokenTypeIdsName] {
            guard inputs.contains(where: { $0.name == name }) else {
                throw ServeError.modelLoadFailed("\(model): the engine has no input '\(name)' (it has \(inputs.map(\.name)))")
            }
        }
        guard inputs.count == 3 else {
            throw ServeError.modelLoadFailed("\(model): the engine has inputs \(inputs.map(\.name)); kiln serve feeds input_ids, attention_mask, token_type_ids")
        }
        guard outputs.contains(where: { $0.name == NLUResultDecoder.intentLogitsName }) else {
            throw ServeError.modelLoadFailed("\(model): the engine has no output '\(NLUResultDecoder.intentLogitsName)'")
        }
    }

    /// A request is on its way (call before decoding or tokenizing it): lets the engine wake its
    /// worker threads while that work runs. Instances share one CPU pool, so one hint covers all.
    public func prepareForRequest() {
        firstInstance.prepareForRequest()
    }

    /// Runs one request's rows through the batcher.
    /// - Parameters:
    ///   - input: the rows.
    ///   - priority: higher runs first.
    ///   - timeout: seconds it may wait in the queue; nil for the model's setting.
    /// - Returns: the request's outputs and timings.
    public func infer(_ input: EngineInput, priority: Int = 0, timeout: Double? = nil) async throws -> BatchedResult<[String: Tensor]> {
        prepareForRequest()
        return try await batcher.submit(input, rows: input.rows, tokens: input.tokens, priority: priority,
                                 timeout: timeout ?? settings.queueTimeoutMs / 1000)
    }

    /// Requests waiting in this version's queue.
    public var queueDepth: Int { batcher.queueDepth }

    /// Finishes queued requests and stops the engine workers; the version answers nothing after.
    public func drain(metrics: ServeMetrics) async {
        await batcher.shutdown()
        metrics.setModelLoaded(model: name, version: versionString, precision: precision, loaded: false)
        if let requestedPrecision {
            metrics.setPrecisionFallback(model: name, version: versionString, requested: requestedPrecision, served: precision, active: false)
        }
        metrics.setQueueDepth(model: name, version: versionString, depth: 0)
    }
}

// An engine with what it was built as. Pattern: a forwarding wrapper around any InferenceEngine that
// carries the precision it runs at and, when that differs from what the server was asked for, why.
// Why safe: it forwards the protocol members unchanged (no state of its own), so batching,
// numerics and thread-safety are the wrapped engine's.
import KilnCore
import KilnRuntime

/// An engine plus the precision it was built at. Engine factories return one when the precision
/// is a choice made at load time (`kiln serve --precision int8` builds int8 only for models that
/// have a calibration cache): the server reports it in the log, in `/v2/models/{m}/config` and in
/// the `kiln_model_loaded{precision=...}` metric.
public struct DescribedEngine: InferenceEngine {
    /// The engine that runs.
    public let base: any InferenceEngine
    /// The precision it runs at (`fp32`, `bf16`, `int8`, ...).
    public let precision: String
    /// The precision the server was asked for, when it is not `precision`.
    public let requestedPrecision: String?
    /// Why the engine runs at `precision` rather than `requestedPrecision` (nil when it does not differ).
    public let note: String?

    /// Wraps an engine.
    /// - Parameters:
    ///   - base: the engine.
    ///   - precision: what it runs at.
    ///   - requestedPrecision: what was asked for, when different.
    ///   - note: why it differs.
    public init(_ base: any InferenceEngine, precision: String, requestedPrecision: String? = nil, note: String? = nil) {
        self.base = base
        self.precision = precision
        self.requestedPrecision = requestedPrecision == precision ? nil : requestedPrecision
        self.note = note
    }

    public var inputSignature: [ValueInfo] { base.inputSignature }
    public var outputSignature: [ValueInfo] { base.outputSignature }
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] { try base.run(inputs) }
    public func prepareForRequest() { base.prepareForRequest() }
}

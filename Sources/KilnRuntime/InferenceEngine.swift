import KilnCore

/// Anything that turns named input tensors into named output tensors: the reference executor
/// today, compiled CPU and GPU engines later. The server talks only to this protocol.
public protocol InferenceEngine: Sendable {
    /// The inputs the engine expects, with declared dtypes and (possibly symbolic) shapes.
    var inputSignature: [ValueInfo] { get }
    /// The outputs it produces, in order.
    var outputSignature: [ValueInfo] { get }
    /// Runs the model once.
    /// - Parameter inputs: one tensor per name in ``inputSignature``.
    /// - Returns: one tensor per name in ``outputSignature``.
    func run(_ inputs: [String: Tensor]) throws -> [String: Tensor]
    /// A request for this engine is on its way (being decoded, tokenized, queued): the engine may
    /// wake what its next run needs, so that the wake-up overlaps that work. Cheap, callable from
    /// any thread, any number of times; the default does nothing.
    func prepareForRequest()
}

extension InferenceEngine {
    public func prepareForRequest() {}
}

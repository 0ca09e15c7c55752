/// What a plan file says about itself, readable before any weight is touched: which Kiln
/// wrote it, for which hardware and precision, from which model, with which signature.
public struct PlanHeader: Codable, Sendable, Equatable {
    /// The plan format version (``PlanFile/formatVersion`` when written).
    public var formatVersion: Int
    /// The Kiln version that built the plan.
    public var kilnVersion: String
    /// The hardware the plan's kernels were chosen for.
    public var target: PlanTarget
    /// `fp32`, `bf16`, `fp16`, `int8`...
    public var precision: String
    /// SHA-256 of the source `.onnx` file.
    public var sourceModelSHA256: String
    /// File name of the source model, for messages.
    public var sourceModelName: String
    /// Inputs the engine expects.
    public var inputs: [ValueInfo]
    /// Outputs it produces.
    public var outputs: [ValueInfo]
    /// The model card (`model.json` beside the model: labels, thresholds...), verbatim, if found.
    public var modelCard: String?
    /// Build settings (`max_batch`, `max_seq`, ...).
    public var buildOptions: [String: String]
    /// One line per optimization pass: what it changed.
    public var passSummary: [String]
    /// When the plan was built (ISO 8601).
    public var createdAt: String

    public init(
        formatVersion: Int = PlanFile.formatVersion, kilnVersion: String, target: PlanTarget, precision: String,
        sourceModelSHA256: String, sourceModelName: String, inputs: [ValueInfo], outputs: [ValueInfo],
        modelCard: String? = nil, buildOptions: [String: String] = [:], passSummary: [String] = [], createdAt: String
    ) {
        self.formatVersion = formatVersion
        self.kilnVersion = kilnVersion
        self.target = target
        self.precision = precision
        self.sourceModelSHA256 = sourceModelSHA256
        self.sourceModelName = sourceModelName
        self.inputs = inputs
        self.outputs = outputs
        self.modelCard = modelCard
        self.buildOptions = buildOptions
        self.passSummary = passSummary
        self.createdAt = createdAt
    }
}

/// The hardware a plan was built for.
public struct PlanTarget: Codable, Sendable, Equatable {
    /// `cpu` or `cuda`.
    public var kind: String
    /// The ISA level (`avx512_bf16`) or GPU architecture (`sm_90`) the kernels target.
    public var architecture: String
    /// CPU feature flags (as in /proc/cpuinfo) the plan's kernels need.
    public var requiredFeatures: [String]

    public init(kind: String, architecture: String, requiredFeatures: [String]) {
        self.kind = kind
        self.architecture = architecture
        self.requiredFeatures = requiredFeatures
    }
}

import KilnRuntime

/// Builds one engine instance for a model version. The server calls it once per instance
/// (`--instances N`) and talks to the result only through ``InferenceEngine``.
///
/// This is the single place to swap engines: today the `kiln` tool passes one that imports
/// `model.onnx` and wraps it in `ReferenceExecutor`; a compiled engine replaces that closure.
public typealias EngineFactory = @Sendable (ModelVersionDirectory) throws -> any InferenceEngine

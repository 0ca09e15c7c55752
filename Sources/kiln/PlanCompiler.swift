import Foundation
import KilnCore
import KilnKernels
import KilnONNX
import KilnPasses
import KilnRuntime
import Synchronization

/// Turns an ONNX model into a plan for this CPU: what `kiln build` does, and what `kiln serve`
/// does on first start for every model version (caching the plan for the next start).
struct PlanCompiler {
    var precision = "fp32"
    var keepHeadsInFP32 = true
    var maxBatch = 16
    var maxSeq = 128
    var dumpAfter: Set<String> = []
    /// INT8 settings for `int8` / `int8-dynamic` plans (see `Int8Build.swift`).
    var int8: Int8Settings?

    /// The product of one compilation.
    struct Output {
        var plan: Plan
        var optimization: OptimizationResult
        var sourceGraph: Graph
    }

    /// Imports, optimizes and packages `modelURL`; `log` receives progress lines.
    func compile(_ modelURL: URL, log: @escaping @Sendable (String) -> Void) throws -> Output {
        let cpu = KilnCore.CPUFeatures.current
        if precision == "bf16" && !cpu.hasBF16 {
            throw KilnError.invalidInput("bf16 plans need a CPU with AVX512_BF16 or AMX; this one (\(cpu.isaLevel)) has neither: use fp32")
        }
        let bytes: Data
        do { bytes = try Data(contentsOf: modelURL, options: .alwaysMapped) } catch {
            throw KilnError.io("cannot read model \(modelURL.path): \(error.localizedDescription)")
        }
        let graph = try ONNXImporter().load(data: bytes, directory: modelURL.deletingLastPathComponent(), source: modelURL.lastPathComponent)
        log("imported \(modelURL.lastPathComponent): \(graph.nodes.count) nodes, \(graph.parameterCount.formatted()) parameters, opset \(graph.opset)")
        let opset = graph.opset
        // INT8 plans are optimized as fp32, then the quantization pass rewrites the GEMMs.
        var result = try KilnOptimizer.optimize(
            graph, evaluate: { try ReferenceKernels.run($0, inputs: $1, opset: opset) },
            options: OptimizationOptions(
                precision: precision.hasPrefix("int8") ? "fp32" : precision, keepHeadsInFP32: keepHeadsInFP32, dumpAfter: dumpAfter, memoryPlanShape: (maxBatch, maxSeq)),
            log: log)
        if precision.hasPrefix("int8") {
            let settings = int8 ?? Int8Settings(activationScales: nil)
            if precision == "int8" && settings.activationScales == nil {
                throw KilnError.invalidInput("int8 plans need a calibration cache (`kiln calibrate`); use int8-dynamic without one")
            }
            try settings.apply(to: &result, log: log)
        }
        var sections: [String: Data] = [:]
        if let memoryPlan = result.memoryPlan { sections["memory-plan"] = try JSONEncoder().encode(memoryPlan) }
        let cardURL = modelURL.deletingLastPathComponent().appendingPathComponent("model.json")
        let header = PlanHeader(
            kilnVersion: KilnVersion.current,
            target: PlanTarget(kind: "cpu", architecture: cpu.isaLevel, requiredFeatures: precision == "bf16" ? ["avx512_bf16"] : []),
            precision: precision, sourceModelSHA256: SHA256.hexDigest(bytes), sourceModelName: modelURL.lastPathComponent,
            inputs: result.graph.inputs, outputs: result.graph.outputs,
            modelCard: try? String(contentsOf: cardURL, encoding: .utf8),
            buildOptions: ["max_batch": String(maxBatch), "max_seq": String(maxSeq), "bf16_heads": String(!keepHeadsInFP32)],
            passSummary: result.reports.filter(\.changedGraph).map(\.summary) + [result.summary],
            createdAt: ISO8601DateFormatter().string(from: Date()))
        return Output(plan: Plan(header: header, graph: result.graph, sections: sections), optimization: result, sourceGraph: graph)
    }
}

/// Compiled engines for `kiln serve`: one plan per (model file, precision, CPU), kept in a
/// cache folder so that only the first start pays for compilation, and one ``Engine`` per
/// plan in memory, shared by all instances of a model version (engines are thread-safe).
final class EngineCache: Sendable {
    private let directory: URL
    private let compiler: PlanCompiler
    private let engines = Mutex<[String: Engine]>([:])
    private let log: @Sendable (String) -> Void

    /// - Parameters:
    ///   - directory: where plans are cached (`KILN_CACHE_DIR`, else `~/.cache/kiln/plans`).
    ///   - compiler: how plans are built.
    init(directory: URL = EngineCache.defaultDirectory, compiler: PlanCompiler = PlanCompiler(), log: @escaping @Sendable (String) -> Void) {
        self.directory = directory
        self.compiler = compiler
        self.log = log
    }

    static var defaultDirectory: URL {
        if let path = ProcessInfo.processInfo.environment["KILN_CACHE_DIR"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/kiln/plans")
    }

    /// The engine for `modelURL`, from memory, from a cached plan, or compiled now.
    func engine(for modelURL: URL) throws -> Engine {
        let digest = try modelDigest(modelURL)
        let key = "\(digest.prefix(16))-\(compiler.precision)-\(KilnCore.CPUFeatures.current.isaLevel)-f\(PlanFile.formatVersion)"
        if let engine = engines.withLock({ $0[key] }) { return engine }
        let planURL = directory.appendingPathComponent("\(key).kiln")
        let plan: Plan
        if let cached = try? PlanFile.read(planURL), cached.header.sourceModelSHA256 == digest {
            log("using cached plan \(planURL.path)")
            plan = cached
        } else {
            log("compiling \(modelURL.path) for this CPU (first start; the plan is cached in \(directory.path))")
            plan = try compiler.compile(modelURL, log: log).plan
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                try PlanFile.write(plan, to: planURL)
            } catch {
                log("could not cache the plan (\(error)); the next start compiles again")
            }
        }
        let engine = try Engine(plan: plan)
        engines.withLock { $0[key] = engine }
        return engine
    }

    private func modelDigest(_ url: URL) throws -> String {
        do { return SHA256.hexDigest(try Data(contentsOf: url, options: .alwaysMapped)) } catch {
            throw KilnError.io("cannot read model \(url.path): \(error.localizedDescription)")
        }
    }
}

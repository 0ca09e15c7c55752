import Foundation
import KilnCore
import KilnPasses
import KilnRuntime

/// Runs the fp32 optimized graph on real utterances and records, for every input of a
/// quantizable GEMM, the histogram calibration needs.
///
/// How it observes: the GEMM inputs are added as extra graph outputs, so the unmodified fp32
/// engine returns them with its results (no hooks in the engine, same kernels the int8 engine
/// replaces). Padded positions are included: they run through the same GEMMs in serving too.
public struct Calibrator: Sendable {
    /// The optimized fp32 graph (what `kiln build` produces before quantization).
    public let graph: Graph

    public init(graph: Graph) { self.graph = graph }

    /// GEMM input value → the GEMMs that read it.
    public var observedValues: [String: [String]] {
        var readers: [String: [String]] = [:]
        for node in QuantizationPass.candidates(in: graph) { readers[node.inputs[0], default: []].append(node.name) }
        return readers
    }

    /// Collects histograms over `texts`; `progress(done, total)` after each batch.
    public func collect(texts: [String], runner: NLURunner, progress: (Int, Int) -> Void = { _, _ in }) throws -> [String: ActivationHistogram] {
        var probed = graph
        let values = observedValues.keys.sorted()
        for name in values where !probed.outputs.contains(where: { $0.name == name }) {
            probed.outputs.append(ValueInfo(name: name, dtype: .float32, shape: nil))
        }
        let engine = try Engine(graph: probed)
        var histograms = Dictionary(uniqueKeysWithValues: values.map { ($0, ActivationHistogram()) })
        var done = 0
        for start in stride(from: 0, to: texts.count, by: runner.batchSize) {
            let batch = Array(texts[start..<min(start + runner.batchSize, texts.count)])
            let (inputs, _) = try runner.inputs(for: batch, signature: engine.inputSignature)
            let results = try engine.run(inputs)
            for name in values {
                guard let tensor = results[name] else { throw KilnError.invalidModel("calibration probe '\(name)' was not produced") }
                tensor.floats.withUnsafeBufferPointer { histograms[name]!.add($0) }
            }
            done += batch.count
            progress(done, texts.count)
        }
        return histograms
    }

    /// The cache for `histograms` with thresholds from `method`.
    public func table(
        histograms: [String: ActivationHistogram], method: CalibrationMethod, model: String, modelSHA256: String, samples: Int,
        data: [String], kilnVersion: String
    ) -> CalibrationTable {
        let readers = observedValues
        var tensors: [String: CalibrationTable.Entry] = [:]
        for (name, histogram) in histograms {
            let threshold = histogram.threshold(method)
            tensors[name] = CalibrationTable.Entry(
                nodes: readers[name] ?? [], min: histogram.minimum, max: histogram.maximum, threshold: threshold,
                scale: Int8Quantization.activationScale(absMax: threshold), histogram: histogram)
        }
        return CalibrationTable(
            kilnVersion: kilnVersion, model: model, modelSHA256: modelSHA256, method: method, samples: samples, data: data,
            createdAt: ISO8601DateFormatter().string(from: Date()), tensors: tensors)
    }
}

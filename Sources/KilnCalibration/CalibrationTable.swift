import Foundation
import KilnCore

/// The calibration cache `kiln calibrate` writes and `kiln build --precision int8` reads: per
/// quantized-op input, the observed range, histogram and chosen threshold; tied to the model
/// by its SHA-256 so a changed model is never built with stale ranges.
public struct CalibrationTable: Sendable, Codable, Equatable {
    /// One GEMM input.
    public struct Entry: Sendable, Codable, Equatable {
        /// The FusedMatMul nodes (after Kiln's optimizer) that read this value.
        public var nodes: [String]
        public var min: Float
        public var max: Float
        /// The clipping threshold of ``CalibrationTable/method``; the int8 scale is threshold / 127.
        public var threshold: Float
        public var scale: Float
        public var histogram: ActivationHistogram
    }

    public static let currentFormat = 1
    public var format = CalibrationTable.currentFormat
    public var kilnVersion: String
    public var model: String
    public var modelSHA256: String
    public var method: CalibrationMethod
    public var samples: Int
    /// The data it was computed on (paths as given).
    public var data: [String]
    public var createdAt: String
    /// Entries by the name of the value a GEMM reads.
    public var tensors: [String: Entry]

    public init(
        kilnVersion: String, model: String, modelSHA256: String, method: CalibrationMethod, samples: Int, data: [String],
        createdAt: String, tensors: [String: Entry]
    ) {
        self.kilnVersion = kilnVersion
        self.model = model
        self.modelSHA256 = modelSHA256
        self.method = method
        self.samples = samples
        self.data = data
        self.createdAt = createdAt
        self.tensors = tensors
    }

    /// Activation scales by value name (what ``QuantizationPass`` takes), optionally scaled by
    /// `factor` (only tests and the broken-engine check use a factor other than 1).
    public func activationScales(factor: Float = 1) -> [String: Float] {
        tensors.mapValues { $0.scale * factor }
    }

    /// Re-derives every threshold and scale with another method from the stored histograms.
    public func rethresholded(_ method: CalibrationMethod) -> CalibrationTable {
        var table = self
        table.method = method
        for (name, entry) in tensors {
            let threshold = entry.histogram.threshold(method)
            table.tensors[name]?.threshold = threshold
            table.tensors[name]?.scale = Int8Quantization.activationScale(absMax: threshold)
        }
        return table
    }

    /// Writes readable JSON (sorted keys, indented).
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { try encoder.encode(self).write(to: url, options: .atomic) } catch {
            throw KilnError.io("cannot write calibration cache \(url.path): \(error.localizedDescription)")
        }
    }

    /// Reads a cache and checks it belongs to the model with `modelSHA256` (when given).
    public static func read(_ url: URL, expectingModelSHA256 modelSHA256: String? = nil) throws -> CalibrationTable {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw KilnError.io("cannot read calibration cache \(url.path): \(error.localizedDescription)")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let table: CalibrationTable
        do { table = try decoder.decode(CalibrationTable.self, from: data) } catch {
            throw KilnError.invalidInput("\(url.path) is not a Kiln calibration cache (\(error)); make one with `kiln calibrate`")
        }
        guard table.format == currentFormat else {
            throw KilnError.invalidInput("\(url.path) is calibration format \(table.format), this kiln reads \(currentFormat): run `kiln calibrate` again")
        }
        if let modelSHA256, table.modelSHA256 != modelSHA256 {
            throw KilnError.invalidInput("\(url.path) was calibrated for another version of the model (sha256 \(table.modelSHA256.prefix(12))…, this model is \(modelSHA256.prefix(12))…): run `kiln calibrate` again")
        }
        return table
    }
}

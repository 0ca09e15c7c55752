import Foundation
import KilnCalibration
import KilnCore
import KilnPasses
import KilnRuntime
import Testing

/// INT8 plans under padding-free (packed) execution: the engine packs ragged batches of int8
/// plans like fp32 ones, and its logits at real tokens match the padded run of the same plan.
///
/// Static int8: every quantized GEMM uses a fixed activation scale, and the GEMM itself is exact
/// int32 arithmetic applied row by row, so packing cannot change an int8 GEMM's result for a
/// given input row; the only differences come from fp32 steps whose summation order depends on
/// the row count (the fp32 heads' GEMMs, attention over padded vs exact lengths), ~1e-5, which
/// can occasionally move an activation across a rounding boundary of the next quantizer (one
/// level: scale·|w| ≈ 1e-3 on a logit). Bound: 5e-3 max-abs on logits of magnitude ~10, and the
/// same argmax everywhere.
///
/// Dynamic int8 is not held to that: padded, the padding rows enter each GEMM's per-call
/// max-abs (and so its scale); packed, only real tokens do — packed is the run whose results do
/// not depend on how much padding a batch carries. Only intent agreement is required there.
@Suite(.serialized) struct Int8PackedExecutionTests {
    /// Utterances of different lengths, so one batch is ragged (the runner pads to the longest).
    static let texts = Array(Int8EngineTests.examples.prefix(16).map(\.text))

    static func runs(_ graph: Graph) throws -> (packed: [NLUOutput], padded: [NLUOutput], usesPacking: Bool) {
        let packed = try Engine(graph: graph, packedExecution: true)
        let padded = try Engine(graph: graph, packedExecution: false)
        return (
            try Int8EngineTests.runner.run(packed, texts: texts), try Int8EngineTests.runner.run(padded, texts: texts),
            packed.usesPackedExecution)
    }

    static func maxAbs(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    static func argmax(_ values: [Float]) -> Int { values.indices.max { values[$0] < values[$1] } ?? -1 }

    @Test("static int8 runs packed, and packed logits equal padded ones within 5e-3 with the same intents")
    func staticInt8PackedMatchesPadded() throws {
        let lengths = Set(Self.texts.map { $0.split(separator: " ").count })
        #expect(lengths.count > 3, "the batch must be ragged")
        let scales = try Int8EngineTests.calibration().activationScales()
        let (graph, report) = try Int8EngineTests.quantized(scales)
        #expect(report.count("GEMMs to int8") > 0)
        let (packed, padded, usesPacking) = try Self.runs(graph)
        #expect(usesPacking, "int8 plans must qualify for padding-free execution")
        #expect(packed.count == padded.count)
        var worst: Float = 0
        for (x, y) in zip(packed, padded) {
            worst = max(worst, Self.maxAbs(x.intentLogits, y.intentLogits), Self.maxAbs(x.slotLogits, y.slotLogits))
            #expect(x.slotLogits.count == y.slotLogits.count)
            #expect(Self.argmax(x.intentLogits) == Self.argmax(y.intentLogits))
        }
        #expect(worst <= 5e-3, "static int8 packed vs padded max-abs \(worst)")
    }

    @Test("dynamic int8 runs packed and agrees with the padded run on every intent")
    func dynamicInt8PackedAgreesWithPadded() throws {
        let (graph, _) = try Int8EngineTests.quantized(nil)
        let (packed, padded, usesPacking) = try Self.runs(graph)
        #expect(usesPacking)
        var agreeing = 0
        for (x, y) in zip(packed, padded) where Self.argmax(x.intentLogits) == Self.argmax(y.intentLogits) { agreeing += 1 }
        #expect(agreeing == packed.count, "\(agreeing) of \(packed.count) intents agree")
    }
}

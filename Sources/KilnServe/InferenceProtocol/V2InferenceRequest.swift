import Foundation
import KilnCore

/// A decoded `POST /v2/models/{name}/infer` body, JSON or with the binary tensor data extension,
/// checked strictly against the model's declared inputs (names, dtypes, shapes and value ranges)
/// before it is queued.
struct V2InferenceRequest: Sendable {
    /// The client's request id, echoed back.
    var id: String?
    /// The validated input rows.
    var input: EngineInput
    /// Requested outputs (all when empty), each with whether it wants binary data.
    var outputs: [(name: String, binary: Bool)]
    /// Whether every output defaults to binary (`binary_data_output` request parameter).
    var binaryByDefault: Bool

    /// Decodes a request body.
    /// - Parameters:
    ///   - body: the whole body.
    ///   - headerLength: the `Inference-Header-Content-Length` header, when the binary extension is used.
    ///   - model: the model version it is for (its signature, vocabulary and max length).
    ///   - limits: server limits.
    static func decode(_ body: [UInt8], headerLength: Int?, model: ServedModel, limits: RequestLimits) throws -> V2InferenceRequest {
        let jsonBytes: [UInt8]
        var binary: ArraySlice<UInt8> = []
        if let headerLength {
            guard headerLength > 0, headerLength <= body.count else {
                throw ServeError.badRequest("Inference-Header-Content-Length is \(headerLength) but the body has \(body.count) bytes")
            }
            jsonBytes = Array(body[0..<headerLength])
            binary = body[headerLength...]
        } else {
            jsonBytes = body
        }
        let data = try JSONBody.validated(jsonBytes, limits: limits)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ServeError.badRequest("the inference request is not a JSON object; expected {\"inputs\": [...]}")
        }
        guard let inputs = object["inputs"] as? [[String: Any]], !inputs.isEmpty else {
            throw ServeError.badRequest("'inputs' must be a non-empty array of tensors {name, shape, datatype, data}")
        }
        var tensors: [String: (shape: [Int], values: [Int64])] = [:]
        for input in inputs {
            let tensor = try decodeTensor(input, binary: &binary, model: model)
            guard tensors[tensor.name] == nil else { throw ServeError.badRequest("input '\(tensor.name)' is given twice") }
            tensors[tensor.name] = (tensor.shape, tensor.values)
        }
        if !binary.isEmpty {
            throw ServeError.badRequest("\(binary.count) bytes of binary data are not claimed by any input's binary_data_size")
        }
        let engineInput = try assemble(tensors, model: model)
        let parameters = object["parameters"] as? [String: Any]
        var outputs: [(String, Bool)] = []
        for output in object["outputs"] as? [[String: Any]] ?? [] {
            guard let name = output["name"] as? String else { throw ServeError.badRequest("every requested output needs a 'name'") }
            guard model.outputSignature.contains(where: { $0.name == name }) else {
                throw ServeError.badRequest("unknown output '\(name)'; the model has \(model.outputSignature.map(\.name))")
            }
            let binaryData = (output["parameters"] as? [String: Any])?["binary_data"] as? Bool ?? false
            outputs.append((name, binaryData))
        }
        return V2InferenceRequest(
            id: object["id"] as? String, input: engineInput, outputs: outputs,
            binaryByDefault: parameters?["binary_data_output"] as? Bool ?? false)
    }

    private static func decodeTensor(_ input: [String: Any], binary: inout ArraySlice<UInt8>, model: ServedModel) throws
        -> (name: String, shape: [Int], values: [Int64])
    {
        guard let name = input["name"] as? String else { throw ServeError.badRequest("every input needs a 'name'") }
        guard let info = model.inputSignature.first(where: { $0.name == name }) else {
            throw ServeError.badRequest("unknown input '\(name)'; the model expects \(model.inputSignature.map(\.signature).joined(separator: ", "))")
        }
        guard let shapeValues = input["shape"] as? [Any], let shape = shapeValues.map({ ($0 as? NSNumber)?.intValue }) as? [Int],
            shape.allSatisfy({ $0 >= 0 })
        else {
            throw ServeError.badRequest("input '\(name)': 'shape' must be an array of non-negative integers")
        }
        let expectedType = V2Datatype.name(of: info.dtype)
        guard let datatype = input["datatype"] as? String else { throw ServeError.badRequest("input '\(name)' needs a 'datatype'") }
        guard datatype == expectedType else {
            throw ServeError.badRequest("input '\(name)' has datatype \(datatype) but the model expects \(expectedType)")
        }
        guard shape.count == 2 else {
            throw ServeError.badRequest("input '\(name)' has shape \(shape) but the model expects [batch, sequence]")
        }
        let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        guard count <= 1 << 24 else { throw ServeError.payloadTooLarge("input '\(name)' is too large (\(shape))") }
        let values: [Int64]
        if let binarySize = (input["parameters"] as? [String: Any])?["binary_data_size"] as? NSNumber {
            let size = binarySize.intValue
            guard size == count * 8 else {
                throw ServeError.badRequest("input '\(name)': binary_data_size is \(size) bytes but shape \(shape) of INT64 needs \(count * 8)")
            }
            guard size <= binary.count else {
                throw ServeError.badRequest("input '\(name)': binary_data_size is \(size) but only \(binary.count) bytes of binary data remain")
            }
            let bytes = binary.prefix(size)
            binary = binary.dropFirst(size)
            values = bytes.withUnsafeBytes { raw in
                (0..<count).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            }
        } else {
            guard let data = input["data"] else { throw ServeError.badRequest("input '\(name)' has neither 'data' nor binary_data_size") }
            var flat: [Int64] = []
            flat.reserveCapacity(count)
            try flatten(data, into: &flat, name: name, limit: count)
            guard flat.count == count else {
                throw ServeError.badRequest("input '\(name)' has \(flat.count) values but shape \(shape) needs \(count)")
            }
            values = flat
        }
        return (name, shape, values)
    }

    private static func flatten(_ value: Any, into flat: inout [Int64], name: String, limit: Int) throws {
        if let array = value as? [Any] {
            for element in array { try flatten(element, into: &flat, name: name, limit: limit) }
            return
        }
        // (No `is Bool` check: on Linux, JSON numbers 0 and 1 bridge to Bool too.)
        guard let number = value as? NSNumber else {
            throw ServeError.badRequest("input '\(name)' has a non-numeric value in 'data'")
        }
        let integer = number.int64Value
        guard number.doubleValue == Double(integer) else {
            throw ServeError.badRequest("input '\(name)' is INT64 but 'data' holds \(number)")
        }
        guard flat.count < limit else { throw ServeError.badRequest("input '\(name)' has more values than its shape") }
        flat.append(integer)
    }

    /// Checks the three inputs agree in shape and hold values the model can take.
    private static func assemble(_ tensors: [String: (shape: [Int], values: [Int64])], model: ServedModel) throws -> EngineInput {
        let names = [EngineInput.inputIdsName, EngineInput.attentionMaskName, EngineInput.tokenTypeIdsName]
        let missing = names.filter { tensors[$0] == nil }
        guard missing.isEmpty else { throw ServeError.badRequest("missing input(s) \(missing.joined(separator: ", "))") }
        let ids = tensors[EngineInput.inputIdsName]!
        for name in names where tensors[name]!.shape != ids.shape {
            throw ServeError.badRequest("input '\(name)' has shape \(tensors[name]!.shape) but input_ids has \(ids.shape); they must agree")
        }
        let (rows, length) = (ids.shape[0], ids.shape[1])
        guard rows >= 1, length >= 1 else { throw ServeError.badRequest("inputs have shape \(ids.shape); batch and sequence must be at least 1") }
        guard length <= model.card.maxSeqLength else {
            throw ServeError.badRequest("sequence length \(length) exceeds the model's max_seq_length \(model.card.maxSeqLength)")
        }
        let vocabulary = Int64(model.encoder.tokenizer.vocabularySize)
        if let bad = ids.values.first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw ServeError.badRequest("input_ids holds \(bad), outside the vocabulary [0, \(vocabulary))")
        }
        if let bad = tensors[EngineInput.attentionMaskName]!.values.first(where: { $0 != 0 && $0 != 1 }) {
            throw ServeError.badRequest("attention_mask holds \(bad); it must be 0 or 1")
        }
        if let bad = tensors[EngineInput.tokenTypeIdsName]!.values.first(where: { $0 != 0 && $0 != 1 }) {
            throw ServeError.badRequest("token_type_ids holds \(bad); it must be 0 or 1")
        }
        return EngineInput(rows: rows, length: length, inputIds: ids.values,
                           attentionMask: tensors[EngineInput.attentionMaskName]!.values,
                           tokenTypeIds: tensors[EngineInput.tokenTypeIdsName]!.values)
    }
}

import Foundation
import KilnCore

/// Renders engine outputs as a v2 inference response: JSON tensors, or with the binary tensor
/// data extension a JSON header followed by raw little-endian tensor bytes.
struct V2InferenceResponse {
    /// The body.
    var body: [UInt8]
    /// The JSON header's length when binary data follows (`Inference-Header-Content-Length`).
    var headerLength: Int?

    init(model: ServedModel, request: V2InferenceRequest, outputs: [String: Tensor]) throws {
        let wanted: [(name: String, binary: Bool)] = request.outputs.isEmpty
            ? model.outputSignature.map { ($0.name, request.binaryByDefault) }
            : request.outputs.map { ($0.name, $0.binary || request.binaryByDefault) }
        var outputObjects: [[String: Any]] = []
        var binary: [UInt8] = []
        for (name, asBinary) in wanted {
            guard let tensor = outputs[name] else { throw ServeError.internalError("the engine did not produce '\(name)'") }
            var object: [String: Any] = ["name": name, "datatype": "FP32", "shape": tensor.shape]
            let values = tensor.floats
            if asBinary {
                let start = binary.count
                binary.reserveCapacity(start + values.count * 4)
                for value in values {
                    withUnsafeBytes(of: value.bitPattern.littleEndian) { binary.append(contentsOf: $0) }
                }
                object["parameters"] = ["binary_data_size": binary.count - start]
            } else {
                object["data"] = values.map { Double($0) }
            }
            outputObjects.append(object)
        }
        var top: [String: Any] = ["model_name": model.name, "model_version": model.versionString, "outputs": outputObjects]
        if let id = request.id { top["id"] = id }
        let json = [UInt8](try JSONSerialization.data(withJSONObject: top))
        body = json + binary
        headerLength = binary.isEmpty ? nil : json.count
    }
}

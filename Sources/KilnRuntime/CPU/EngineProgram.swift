import KilnCore

/// An ``Engine``'s execution order compiled once into slot numbers, so a call walks arrays
/// instead of looking values up by name, and knows after each step which intermediate values
/// just died (their buffers go back to the ``ExecutionContext``'s pool for the next outputs of
/// the same size: after the first call, a call allocates almost nothing).
struct EngineProgram: Sendable {
    /// One value slot per distinct value name the steps, inputs and outputs use.
    let slotCount: Int
    /// Graph inputs: name and slot.
    let inputs: [(name: String, slot: Int)]
    /// Graph outputs: name and slot.
    let outputs: [(name: String, slot: Int)]
    /// Slots pre-filled with initializers (weights, constants): the template a call starts from.
    let template: [Tensor?]
    /// Per step: the slot of each input (nil for an omitted optional input).
    let stepInputs: [[Int?]]
    /// Per step: the slot of each output (nil for an unused optional output).
    let stepOutputs: [[Int?]]
    /// Per step: slots produced by steps whose last reader is this step (never graph outputs).
    let releases: [[Int]]

    /// - Parameter omitting: initializers left out of the template and possibly already removed
    ///   from `graph` (their readers' kernels hold them in another form); those operands reach
    ///   the step as nil.
    init(graph: Graph, order: [Node], omitting: Set<String> = []) throws {
        var slots: [String: Int] = [:]
        func slot(_ name: String) -> Int {
            if let existing = slots[name] { return existing }
            slots[name] = slots.count
            return slots.count - 1
        }
        let inputs = graph.inputs.map { (name: $0.name, slot: slot($0.name)) }
        var stepInputs: [[Int?]] = []
        var stepOutputs: [[Int?]] = []
        var produced: Set<String> = []
        var lastUse: [String: Int] = [:]
        for (position, node) in order.enumerated() {
            stepInputs.append(node.inputs.map { $0.isEmpty ? nil : slot($0) })
            stepOutputs.append(node.outputs.map { $0.isEmpty ? nil : slot($0) })
            for name in node.inputs where !name.isEmpty { lastUse[name] = position }
            produced.formUnion(node.outputs.filter { !$0.isEmpty })
        }
        let outputNames = Set(graph.outputs.map(\.name))
        let outputs = graph.outputs.map { (name: $0.name, slot: slot($0.name)) }
        var template = [Tensor?](repeating: nil, count: slots.count)
        for (name, index) in slots where !produced.contains(name) && !omitting.contains(name) {
            if let constant = graph.initializers[name] { template[index] = constant }
        }
        var releases = [[Int]](repeating: [], count: order.count)
        for (name, position) in lastUse where produced.contains(name) && !outputNames.contains(name) {
            releases[position].append(slots[name]!)
        }
        // Every value a step reads must be a graph input, an initializer or an earlier output.
        var available = Set(graph.inputs.map(\.name)).union(graph.initializers.keys).union(omitting)
        for node in order {
            for name in node.inputs where !name.isEmpty && !available.contains(name) {
                throw KilnError.invalidModel("node '\(node.name)' reads '\(name)', which has no value")
            }
            available.formUnion(node.outputs.filter { !$0.isEmpty })
        }
        for output in graph.outputs where !available.contains(output.name) {
            throw KilnError.invalidModel("output '\(output.name)' was never produced")
        }
        self.slotCount = slots.count
        self.inputs = inputs
        self.outputs = outputs
        self.template = template
        self.stepInputs = stepInputs
        self.stepOutputs = stepOutputs
        self.releases = releases
    }

    /// Runs every step with `execute(position, operands)`, handing each dead intermediate value
    /// to `release`, and returns the graph outputs.
    func run(
        _ feeds: [String: Tensor], execute: (Int, [Tensor?]) throws -> [Tensor], release: (Tensor) -> Void
    ) throws -> [String: Tensor] {
        var values = template
        for input in inputs { values[input.slot] = feeds[input.name] }
        for position in stepInputs.indices {
            let operands = stepInputs[position].map { $0.flatMap { values[$0] } }
            let results = try execute(position, operands)
            for (slot, tensor) in zip(stepOutputs[position], results) {
                if let slot { values[slot] = tensor }
            }
            for slot in releases[position] {
                if let tensor = values[slot] {
                    values[slot] = nil
                    release(tensor)
                }
            }
        }
        var results: [String: Tensor] = [:]
        for output in outputs {
            guard let tensor = values[output.slot] else { throw KilnError.invalidModel("output '\(output.name)' was never produced") }
            results[output.name] = tensor
        }
        return results
    }
}

import KilnCore

/// How the axes of a tensor derived from a `[B, S, H]` projection are arranged, followed
/// through Reshape and Transpose nodes: each axis holds a list of atoms (batch, seq, heads,
/// headSize, or the unsplit hidden axis). The attention fusion uses it to recognise
/// "split heads" and "merge heads" however an exporter spells them: one Transpose
/// `[0, 2, 3, 1]`, two Transposes, or Reshape → Transpose → Reshape through `[B·heads, S, d]`.
struct HeadLayout: Equatable {
    enum Atom: Hashable { case batch, seq, heads, headSize, hidden }

    var axes: [[Atom]]
    var sizes: [Atom: SymbolicDim]

    /// The layout of a `[B, S, H]` value.
    init?(projection shape: SymbolicShape) {
        guard shape.count == 3, !shape.contains(where: \.isUnknown), shape[2].isConstant else { return nil }
        axes = [[.batch], [.seq], [.hidden]]
        sizes = [.batch: shape[0], .seq: shape[1], .hidden: shape[2]]
    }

    /// `[B, heads, S, d]`: queries, values and the attention context.
    static let headsMajor: [[Atom]] = [[.batch], [.heads], [.seq], [.headSize]]
    /// `[B, heads, d, S]`: transposed keys.
    static let keysTransposed: [[Atom]] = [[.batch], [.heads], [.headSize], [.seq]]
    /// `[B, S, heads·d]`: the merged context.
    static let merged: [[Atom]] = [[.batch], [.seq], [.heads, .headSize]]

    mutating func transpose(_ permutation: [Int]) -> Bool {
        guard permutation.sorted() == Array(0..<axes.count) else { return false }
        axes = permutation.map { axes[$0] }
        return true
    }

    /// Regroups the atoms into `dims`; splits the hidden atom into heads × headSize the first
    /// time an output dimension divides it, with `heads` shared across the paths of one block.
    mutating func reshape(to dims: SymbolicShape, heads: inout SymbolicDim?) -> Bool {
        var flat = axes.flatMap { $0 }
        var position = 0
        var regrouped: [[Atom]] = []
        for dim in dims {
            guard !dim.isUnknown else { return false }
            var group: [Atom] = []
            var product = SymbolicDim(1)
            while product != dim {
                guard position < flat.count, group.count < 4 else { return false }
                let atom = flat[position]
                if atom == .hidden, group.isEmpty, let hidden = sizes[.hidden], dim != hidden {
                    guard let headSize = hidden.dividedExactly(by: dim), heads == nil || heads == dim else { return false }
                    heads = dim
                    sizes[.heads] = dim
                    sizes[.headSize] = headSize
                    flat.replaceSubrange(position...position, with: [.heads, .headSize])
                    continue
                }
                guard let size = sizes[atom] else { return false }
                group.append(atom)
                product = product * size
                position += 1
            }
            regrouped.append(group)
        }
        guard position == flat.count else { return false }
        axes = regrouped
        return true
    }

    /// Applies a Transpose or Reshape node, with output shapes from `types`.
    mutating func apply(_ node: Node, types: ShapeInference, heads: inout SymbolicDim?) -> Bool {
        if node.isStandard("Transpose") {
            let permutation = ((try? node.ints("perm")) ?? nil)?.map(Int.init) ?? Array((0..<axes.count).reversed())
            return transpose(permutation)
        }
        if node.isStandard("Reshape"), let dims = types.shape(of: node.outputs[0]) {
            return reshape(to: dims, heads: &heads)
        }
        return false
    }
}

/// A tensor dimension that may depend on run-time sizes: `coefficient × Π symbolᵉ`, e.g. `4`,
/// `seq`, `batch*seq` or `12*batch`. Products and exact quotients stay symbolic; sums of
/// unlike terms cannot be written this way and become a fresh unknown symbol (see
/// ``SymbolicDim/unknown(_:)``), which compares equal only to itself.
public struct SymbolicDim: Sendable, Hashable, CustomStringConvertible {
    /// The constant factor.
    public let coefficient: Int
    /// Symbols and their exponents, sorted by name; empty for a constant.
    public let factors: [Factor]

    /// One symbol raised to a positive power.
    public struct Factor: Sendable, Hashable {
        public let symbol: String
        public let exponent: Int
    }

    /// A concrete size.
    public init(_ value: Int) {
        coefficient = value
        factors = []
    }

    /// A named run-time size such as `batch`.
    public init(symbol: String) {
        coefficient = 1
        factors = [Factor(symbol: symbol, exponent: 1)]
    }

    private init(coefficient: Int, exponents: [String: Int]) {
        self.coefficient = coefficient
        self.factors = coefficient == 0 ? [] : exponents.filter { $0.value != 0 }.sorted { $0.key < $1.key }
            .map { Factor(symbol: $0.key, exponent: $0.value) }
    }

    /// A size nothing is known about, named `?<id>` so it never equals another dimension.
    public static func unknown(_ id: Int) -> SymbolicDim { SymbolicDim(symbol: "?\(id)") }

    /// The size when it does not depend on any symbol.
    public var constant: Int? { factors.isEmpty ? coefficient : nil }

    /// Whether the size is known without running the model.
    public var isConstant: Bool { factors.isEmpty }

    /// Whether the dimension mentions a symbol that stands for "unknown".
    public var isUnknown: Bool { factors.contains { $0.symbol.hasPrefix("?") } }

    private var exponents: [String: Int] {
        Dictionary(uniqueKeysWithValues: factors.map { ($0.symbol, $0.exponent) })
    }

    public static func * (lhs: SymbolicDim, rhs: SymbolicDim) -> SymbolicDim {
        SymbolicDim(coefficient: lhs.coefficient * rhs.coefficient, exponents: lhs.exponents.merging(rhs.exponents, uniquingKeysWith: +))
    }

    /// `lhs / rhs` when the quotient is again a product (no remainder, no negative exponent).
    public func dividedExactly(by divisor: SymbolicDim) -> SymbolicDim? {
        guard divisor.coefficient != 0, coefficient % divisor.coefficient == 0 else { return nil }
        var result = exponents
        for factor in divisor.factors {
            let remaining = (result[factor.symbol] ?? 0) - factor.exponent
            guard remaining >= 0 else { return nil }
            result[factor.symbol] = remaining
        }
        return SymbolicDim(coefficient: coefficient / divisor.coefficient, exponents: result)
    }

    /// `lhs + rhs` when both are like terms (same symbols), else nil.
    public func adding(_ other: SymbolicDim) -> SymbolicDim? {
        if coefficient == 0 { return other }
        if other.coefficient == 0 { return self }
        guard factors == other.factors else { return nil }
        return SymbolicDim(coefficient: coefficient + other.coefficient, exponents: exponents)
    }

    /// The size with every symbol replaced by its value in `bindings`, or nil if one is missing.
    public func evaluated(_ bindings: [String: Int]) -> Int? {
        var value = coefficient
        for factor in factors {
            guard let bound = bindings[factor.symbol] else { return nil }
            for _ in 0..<factor.exponent { value *= bound }
        }
        return value
    }

    public var description: String {
        if factors.isEmpty { return String(coefficient) }
        let symbols = factors.map { $0.exponent == 1 ? $0.symbol : "\($0.symbol)^\($0.exponent)" }
        return (coefficient == 1 ? [] : [String(coefficient)]).joined() + (coefficient == 1 ? "" : "*") + symbols.joined(separator: "*")
    }
}

extension SymbolicDim: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) { self.init(value) }
}

/// A shape whose dimensions may be symbolic.
public typealias SymbolicShape = [SymbolicDim]

extension Array where Element == SymbolicDim {
    /// `[batch, seq, 384]`
    public var symbolicDescription: String { "[" + map(\.description).joined(separator: ", ") + "]" }

    /// The concrete sizes when no dimension is symbolic.
    public var concreteSizes: [Int]? {
        var sizes: [Int] = []
        for dim in self {
            guard let size = dim.constant else { return nil }
            sizes.append(size)
        }
        return sizes
    }

    /// The number of elements, as a symbolic product.
    public var elementCount: SymbolicDim { reduce(SymbolicDim(1), *) }
}

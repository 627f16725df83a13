/// Whisper's aggregation methods, by their number in the file.
public enum AggregationMethod: UInt32, Sendable, CaseIterable {
    case average = 1, sum, last, max, min, avgZero, absMax, absMin

    public var name: String {
        switch self {
        case .average: "average"
        case .sum: "sum"
        case .last: "last"
        case .max: "max"
        case .min: "min"
        case .avgZero: "avg_zero"
        case .absMax: "absmax"
        case .absMin: "absmin"
        }
    }

    /// The method whisper names `name` (`average`, `sum`, ..., `avg_zero`, `absmax`, `absmin`).
    public init?(name: String) {
        guard let m = AggregationMethod.allCases.first(where: { $0.name == name }) else { return nil }
        self = m
    }

    /// The value of one coarser interval from the finer values that make it up (in time order,
    /// nil where the finer archive has no point), as whisper 1.1.10's `__propagate` computes
    /// it: nil when no value is known or the known share is below `xFilesFactor`.
    public func aggregate(_ values: [Double?], xFilesFactor: Float) -> Double? {
        var a = Aggregator(self)
        for v in values { a.add(v) }
        return a.result(xFilesFactor: xFilesFactor)
    }
}

/// Aggregates a run of values one at a time, without building whisper's lists, and gives
/// exactly what whisper 1.1.10 computes (`aggregate` and the xFilesFactor test of
/// `__propagate`):
///
/// - `knownPercent = known / all` as a double, compared `>=` with the file's xFilesFactor
///   (a 32-bit float widened to double, so 0.3 is 0.30000001192...);
/// - average and sum add the known values left to right from 0 (Python's `sum`);
/// - last is the newest known value; max/min keep the first of equal values and replace the
///   current one only when a later value compares greater/less (so a NaN behaves as in
///   Python's `max`); absmax/absmin do the same on absolute values;
/// - avg_zero adds every value with the unknown ones as 0 and divides by all.
public struct Aggregator {
    public let method: AggregationMethod
    public private(set) var known = 0
    public private(set) var count = 0
    var sum = 0.0
    var sumWithZeros = 0.0
    var pick = 0.0

    public init(_ method: AggregationMethod) { self.method = method }

    @inline(__always)
    public mutating func add(_ value: Double?) {
        count += 1
        guard let v = value else { return }
        sum += v
        sumWithZeros += v
        if known == 0 {
            pick = v
        } else {
            switch method {
            case .last: pick = v
            case .max: if v > pick { pick = v }
            case .min: if v < pick { pick = v }
            case .absMax: if abs(v) > abs(pick) { pick = v }
            case .absMin: if abs(v) < abs(pick) { pick = v }
            case .average, .sum, .avgZero: break
            }
        }
        known += 1
    }

    /// The aggregate, or nil when nothing is known or too little (`known / count < xff`).
    public func result(xFilesFactor: Float) -> Double? {
        guard known > 0, count > 0 else { return nil }
        guard Double(known) / Double(count) >= Double(xFilesFactor) else { return nil }
        switch method {
        case .average: return sum / Double(known)
        case .sum: return sum
        case .avgZero: return sumWithZeros / Double(count)
        case .last, .max, .min, .absMax, .absMin: return pick
        }
    }
}

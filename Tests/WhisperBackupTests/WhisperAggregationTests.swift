import XCTest
@testable import WhisperBackup

/// Aggregation as whisper 1.1.10 computes it (`aggregate` and the xFilesFactor test of
/// `__propagate`); every expected value below is what `whisper.aggregate` returned for the
/// same neighbour values under CPython 3.11.
final class WhisperAggregationTests: XCTestCase {
    typealias Case = (values: [Double?], expected: [AggregationMethod: Double])

    let cases: [Case] = [
        ([1.5, nil, -3.25, 7.0, nil, 0.0],
         [.average: 1.3125, .sum: 5.25, .last: 0.0, .max: 7.0, .min: -3.25, .avgZero: 0.875, .absMax: 7.0, .absMin: 0.0]),
        ([nil, nil, nil, 2.0],
         [.average: 2.0, .sum: 2.0, .last: 2.0, .max: 2.0, .min: 2.0, .avgZero: 0.5, .absMax: 2.0, .absMin: 2.0]),
        ([-5.0, 5.0, 3.0, -5.0],
         [.average: -0.5, .sum: -2.0, .last: -5.0, .max: 5.0, .min: -5.0, .avgZero: -0.5, .absMax: -5.0, .absMin: 3.0]),
        ([0.1, 0.2, 0.3, nil, nil],
         [.average: 0.20000000000000004, .sum: 0.6000000000000001, .last: 0.3, .max: 0.3, .min: 0.1,
          .avgZero: 0.12000000000000002, .absMax: 0.3, .absMin: 0.1]),
    ]

    func testEveryMethodMatchesWhisper() {
        for (values, expected) in cases {
            XCTAssertEqual(expected.count, AggregationMethod.allCases.count)
            for method in AggregationMethod.allCases {
                let got = method.aggregate(values, xFilesFactor: 0)
                XCTAssertEqual(got.map(\.bitPattern), expected[method]!.bitPattern, "\(method.name) of \(values)")
            }
        }
    }

    func testXFilesFactorIsTheFilesFloat32ComparedAsDouble() {
        // 3 of 10 known: 0.3 (double) < 0.30000001192092896 (the float32 0.3 widened).
        let three: [Double?] = [1, 2, 3] + [Double?](repeating: nil, count: 7)
        XCTAssertNil(AggregationMethod.average.aggregate(three, xFilesFactor: 0.3))
        XCTAssertEqual(AggregationMethod.average.aggregate(three, xFilesFactor: 0.29), 2)
        // 1 of 2 known meets 0.5 exactly.
        XCTAssertEqual(AggregationMethod.sum.aggregate([nil, 4], xFilesFactor: 0.5), 4)
        XCTAssertNil(AggregationMethod.sum.aggregate([nil, nil, 4], xFilesFactor: 0.5))
        // Nothing known: no point, whatever the factor.
        XCTAssertNil(AggregationMethod.sum.aggregate([nil, nil], xFilesFactor: 0))
        XCTAssertEqual(AggregationMethod.avgZero.aggregate([nil, nil, 3], xFilesFactor: 0), 1)
    }

    func testTiesAndNaNFollowPythonsMaxAndMin() {
        // max([nan, 1.0]) is nan, max([1.0, nan]) is 1.0 in Python.
        XCTAssertTrue(AggregationMethod.max.aggregate([.nan, 1], xFilesFactor: 0)!.isNaN)
        XCTAssertEqual(AggregationMethod.max.aggregate([1, .nan], xFilesFactor: 0), 1)
        // absmax keeps the first of equal magnitudes: max([-5, 5], key=abs) is -5.
        XCTAssertEqual(AggregationMethod.absMax.aggregate([-5, 5], xFilesFactor: 0), -5)
        XCTAssertEqual(AggregationMethod.absMin.aggregate([2, -2], xFilesFactor: 0), 2)
        // sum starts from 0: sum([-0.0]) is 0.0.
        XCTAssertEqual(AggregationMethod.sum.aggregate([-0.0], xFilesFactor: 0)?.bitPattern, (0.0).bitPattern)
    }

    func testNamesRoundTrip() {
        for m in AggregationMethod.allCases { XCTAssertEqual(AggregationMethod(name: m.name), m) }
        XCTAssertNil(AggregationMethod(name: "median"))
        XCTAssertEqual(AggregationMethod.avgZero.rawValue, 6)
        XCTAssertEqual(AggregationMethod.absMin.rawValue, 8)
    }
}

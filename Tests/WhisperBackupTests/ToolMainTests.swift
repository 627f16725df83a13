import ArgumentParser
import XCTest
@testable import WhisperBackup

/// How a run's end maps to the exit status (DESIGN: 0 all ok, 1 some records failed, 2 usage
/// or configuration and nothing done, 128+signal, 141).
final class ToolMainTests: XCTestCase {
    func code(_ error: Error?, signal: Int32 = 0, readerLeft: Bool = false) -> Int32 {
        ToolMain.exitCode(for: error, signal: signal, readerLeft: readerLeft).code
    }

    func testEveryEnding() {
        XCTAssertEqual(code(nil), 0)
        XCTAssertEqual(code(RecordsFailed(count: 2)), 1)
        XCTAssertEqual(code(ConfigError("s3://b: no credentials")), 2)
        XCTAssertEqual(code(ValidationError("--keep must be positive")), 2)
        XCTAssertEqual(code(ExitCode(3)), 3)
        XCTAssertEqual(code(StoreError(.transient, "s3://b: list: 503")), 1)
        XCTAssertEqual(code(RecordError("something else")), 2)
        // A stop by a signal wins over failures of the run, not over a refused configuration.
        XCTAssertEqual(code(nil, signal: 15), 143)
        XCTAssertEqual(code(RecordsFailed(count: 1), signal: 2), 130)
        XCTAssertEqual(code(StoreError(.permanent, "x"), signal: 15), 143)
        XCTAssertEqual(code(ConfigError("x"), signal: 15), 2)
        // The reader of stdout went away: never 0 or 1.
        XCTAssertEqual(code(nil, readerLeft: true), 141)
        XCTAssertEqual(code(RecordsFailed(count: 1), readerLeft: true), 141)
    }

    /// Only the opening probe's failures are configuration errors (the registry turns them
    /// into `ConfigError`); a store that fails for good later, after deletes may have
    /// happened, is a failed run, not "nothing was done".
    func testAPermanentStoreErrorMidRunIsNotExitTwo() {
        let outcome = ToolMain.exitCode(for: StoreError(.permanent, "s3://b: DELETE k: AccessDenied"), signal: 0, readerLeft: false)
        XCTAssertEqual(outcome.code, 1)
        XCTAssertEqual(outcome.message, "s3://b: DELETE k: AccessDenied")
    }
}

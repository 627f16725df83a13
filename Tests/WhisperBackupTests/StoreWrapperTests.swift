import XCTest
@testable import WhisperBackup

/// The registry wraps every base store the same way: retry, then dry run, with the opening
/// probe going through both.
final class StoreWrapperTests: XCTestCase {
    func settings(retries: Int = 0, dryRun: Bool = false, create: Bool = false) -> StoreSettings {
        var s = StoreSettings()
        s.retries = retries
        s.dryRun = dryRun
        s.createMissing = create
        return s
    }

    func testWrapsRetryThenDryRunOnce() throws {
        let mem = MemoryStore()
        let dry = try XCTUnwrap(try StoreRegistry.wrap(mem, settings: settings(retries: 2, dryRun: true)) as? DryRunStore)
        let retry = try XCTUnwrap(dry.base as? RetryStore)
        XCTAssertTrue(retry.base === mem)
        XCTAssertEqual(retry.attempts, 3)
        XCTAssertTrue(try StoreRegistry.wrap(mem, settings: settings()) === mem)
    }

    func testProbeIsRetriedThroughTheWrapper() throws {
        let mem = MemoryStore()
        mem.faults["prepare"] = [StoreError(.transient, "mem://bucket: list: 503")]
        _ = try StoreRegistry.wrap(mem, settings: settings(retries: 1))
        XCTAssertEqual(mem.calls, ["prepare", "prepare"])
        // Without retries the transient failure is the run's failure (exit 1), not a config error.
        mem.faults["prepare"] = [StoreError(.transient, "mem://bucket: list: 503")]
        XCTAssertThrowsError(try StoreRegistry.wrap(mem, settings: settings())) {
            XCTAssertEqual(($0 as? StoreError)?.kind, .transient)
        }
    }

    func testMissingStoreIsAConfigErrorUnlessCreated() throws {
        let mem = MemoryStore()
        mem.exists = false
        XCTAssertThrowsError(try StoreRegistry.wrap(mem, settings: settings())) {
            XCTAssertTrue($0 is ConfigError)
            XCTAssertEqual("\($0)", "mem://bucket: bucket does not exist (create it, or pass --create-bucket)")
        }
        mem.faults["prepare"] = [StoreError(.permanent, "mem://bucket: list: AccessDenied")]
        XCTAssertThrowsError(try StoreRegistry.wrap(mem, settings: settings(create: true))) { XCTAssertTrue($0 is ConfigError) }
        _ = try StoreRegistry.wrap(mem, settings: settings(create: true))
        XCTAssertTrue(mem.exists)
        XCTAssertEqual(mem.calls, ["prepare", "prepare", "prepare", "create"])
    }

    func testDryRunAgainstAMissingStoreReadsAsEmptyAndCreatesNothing() throws {
        let mem = MemoryStore()
        mem.exists = false
        let dry = try StoreRegistry.wrap(mem, settings: settings(retries: 2, dryRun: true, create: true))
        var listed: [String] = []
        try dry.list(prefix: "") { listed.append($0.key) }
        XCTAssertEqual(listed, [])
        XCTAssertNil(try dry.head("a/b"))
        XCTAssertThrowsError(try dry.get("a/b", to: "/nonexistent/x")) { XCTAssertEqual(($0 as? StoreError)?.kind, .notFound) }
        try dry.put("a/b", body: .bytes([1]))
        XCTAssertTrue(try dry.delete(["a/b"]).isEmpty)
        XCTAssertFalse(mem.exists)
        XCTAssertEqual(mem.calls, ["prepare"])
    }
}

import XCTest
@testable import WhisperBackup

final class WriteAllocatedTests: XCTestCase {
    /// Zeros at the start, in the middle and at the end, around data: the file reads back
    /// byte for byte and all of its blocks are allocated (not a sparse file).
    func testNewFileReadsBackAndIsNotSparse() throws {
        let dir = NSTemporaryDirectory() + "write-allocated-\(getpid())"
        try Path.makeDirectories(dir)
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        var bytes = [UInt8](repeating: 0, count: 3 << 20)
        for i in (100_000..<150_000) { bytes[i] = UInt8(truncatingIfNeeded: i) }
        for i in (2_000_000..<2_000_100) { bytes[i] = 7 }
        let shapes: [(String, [UInt8])] = [
            ("zeros-around-data", bytes),
            ("all-zeros", [UInt8](repeating: 0, count: 1 << 20)),
            ("data-at-both-ends", [1] + [UInt8](repeating: 0, count: 1 << 20) + [2]),
            ("no-zeros", (0..<70_000).map { UInt8(truncatingIfNeeded: $0 | 1) }),
        ]
        for (name, content) in shapes {
            let path = dir + "/" + name
            let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL)
            try fd.closeAfter { try content.withUnsafeBytes { try fd.writeAllocated($0) } }
            XCTAssertEqual(FileManager.default.contents(atPath: path).map { [UInt8]($0) }, content, name)
            let st = try system_stat(path)
            XCTAssertEqual(Int(st.st_size), content.count, name)
            XCTAssertGreaterThanOrEqual(Int(st.st_blocks) * 512, content.count, "\(name): every block allocated")
        }
    }
}

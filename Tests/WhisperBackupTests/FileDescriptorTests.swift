import Foundation
import XCTest
@testable import WhisperBackup

final class FileDescriptorTests: XCTestCase {
    func testForEachChunkReadsTheWholeFileInChunks() throws {
        let path = NSTemporaryDirectory() + "chunks-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bytes = (0..<10).map { UInt8($0) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let fd = try FileDescriptor.open(path, O_RDONLY)
        var sizes: [Int] = [], seen: [UInt8] = []
        try fd.closeAfter { try fd.forEachChunk(chunkSize: 3) { sizes.append($0.count); seen += $0 } }
        XCTAssertEqual(sizes, [3, 3, 3, 1])
        XCTAssertEqual(seen, bytes)
    }
}

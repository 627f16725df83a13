import Foundation
import XCTest

/// The library's folders are floors: a file may use what its own floor and the floors below
/// declare, never what a floor above declares (README "Layout of the code").
final class LayerTests: XCTestCase {
    /// Bottom first; folders on one floor may use each other (System's files write through
    /// Codec's ZeroRuns and hash with its Digest; Codec's Gzip reads through a FileDescriptor).
    static let floors = [["Codec", "System"], ["Records"], ["Whisper"], ["HTTP"], ["Store"], ["Pipeline"], ["CLI"], ["Orchestrator"]]
    /// Known uses of a higher floor, to be moved down: "file uses name".
    static let pending: Set<String> = []

    func testNoFloorUsesAHigherOne() throws {
        let library = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/WhisperBackup").standardized
        var texts: [(floor: Int, path: String, code: String)] = []
        var home: [String: Int] = [:]
        let declaration = try NSRegularExpression(pattern:
            "^(?:(?:public|final|private|fileprivate|internal|static|indirect)\\s+)*(?:struct|class|enum|protocol|typealias|func|let|var)\\s+([A-Za-z_]\\w*)",
            options: .anchorsMatchLines)
        let folders = LayerTests.floors.enumerated().flatMap { floor, names in names.map { (floor, $0) } }
        for (floor, name) in folders {
            let dir = library.appendingPathComponent(name)
            for file in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() where file.hasSuffix(".swift") {
                let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
                let code = text.components(separatedBy: "\n").map { $0.components(separatedBy: "//")[0] }.joined(separator: "\n")
                texts.append((floor, "\(name)/\(file)", code))
                for m in declaration.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    let n = (text as NSString).substring(with: m.range(at: 1))
                    if home[n] == nil { home[n] = floor }
                }
            }
        }
        XCTAssertGreaterThan(texts.count, 50)
        var found: [String] = []
        for t in texts {
            for (name, floor) in home where floor > t.floor {
                if t.code.range(of: "\\b\(name)\\b", options: .regularExpression) != nil { found.append("\(t.path) uses \(name)") }
            }
        }
        XCTAssertEqual(Set(found).subtracting(LayerTests.pending).sorted(), [],
                       "a lower floor uses a higher one (\(LayerTests.floors.map { $0.joined(separator: "+") }.joined(separator: " < ")))")
    }
}

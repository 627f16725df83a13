import Foundation
import XCTest

/// Keeps "every libc call goes through System/Syscalls.swift" true: scans the library's
/// sources for calls of C library functions anywhere else (the C shims are C, not scanned).
final class SyscallsOnlyTests: XCTestCase {
    static let libc = """
        open openat close read write pread pwrite lseek fstat stat lstat flock fcntl ioctl fsync \
        fdatasync syncfs sync_file_range fallocate posix_fallocate posix_fadvise truncate ftruncate \
        rename renameat link linkat unlink unlinkat rmdir mkdir realpath getpid kill opendir readdir \
        closedir nanosleep usleep sleep clock_gettime gettimeofday time gmtime gmtime_r localtime_r \
        timegm mktime strftime strptime isatty getenv setenv unsetenv signal sigaction sigemptyset \
        raise fputs fputc fwrite fprintf printf fflush exit _exit abort strerror strerror_r dup dup2 \
        pipe poll select mmap munmap fork execve waitpid access chmod fchmod umask
        """.split(whereSeparator: \.isWhitespace).map(String.init)

    /// `file:line: call` for every direct libc call in `text`. A call is `name(` not after a
    /// `.` (a method) or `func`, whose first argument has no label, in a file that does not
    /// declare its own `name` (a method, closure parameter or variable of that name).
    static func directCalls(in text: String, file: String) -> [String] {
        let names = libc.joined(separator: "|")
        let call = try! NSRegularExpression(pattern: "(?<![\\w.])(\(names))\\((?!\\s*[A-Za-z_]\\w*\\s*:[^:])(?!\\))")
        let qualified = try! NSRegularExpression(pattern: "\\b(Glibc|Musl|Darwin)\\.\\w+\\(")
        var found: [String] = []
        for (i, raw) in text.components(separatedBy: "\n").enumerated() {
            let line = raw.components(separatedBy: "//")[0]
            let range = NSRange(line.startIndex..., in: line)
            for m in qualified.matches(in: line, range: range) {
                found.append("\(file):\(i + 1): \((line as NSString).substring(with: m.range))")
            }
            for m in call.matches(in: line, range: range) {
                let name = (line as NSString).substring(with: m.range(at: 1))
                let before = (line as NSString).substring(to: m.range.location)
                if before.range(of: "func\\s*$", options: .regularExpression) != nil { continue }
                let own = "(func\\s+\(name)\\b|\\b(let|var)\\s+\(name)\\b|\\b\(name)\\s*:\\s*(@escaping\\s*)?\\()"
                if text.range(of: own, options: .regularExpression) != nil { continue }
                found.append("\(file):\(i + 1): \(name)(")
            }
        }
        return found
    }

    func testNoLibcCallOutsideSyscalls() throws {
        let library = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/WhisperBackup").standardized
        let files = try XCTUnwrap(FileManager.default.enumerator(atPath: library.path)).compactMap { $0 as? String }
            .filter { $0.hasSuffix(".swift") && $0 != "System/Syscalls.swift" }
        XCTAssertGreaterThan(files.count, 50)
        var found: [String] = []
        for f in files.sorted() {
            found += SyscallsOnlyTests.directCalls(in: try String(contentsOf: library.appendingPathComponent(f), encoding: .utf8), file: f)
        }
        XCTAssertEqual(found, [], "call these through a system_ function in System/Syscalls.swift")
    }

    /// The scanner finds what it must and leaves methods, labels and own functions alone.
    func testTheScannerItself() {
        let bad = "let n = read(fd, p, 1)\n_ = Glibc.write(fd, p, 1)\nunlink(path)\nlet t = timegm(&tm)"
        XCTAssertEqual(SyscallsOnlyTests.directCalls(in: bad, file: "x").count, 4)
        let fine = "fd.read(into: b)\ntry read(into: b, at: 0)\nfunc send(_ x: Int) {}\nsend(1)\nsystem_read(fd)\n" +
            "let x = stat()\nwrite(line: s)"
        XCTAssertEqual(SyscallsOnlyTests.directCalls(in: fine, file: "x"), [])
    }
}

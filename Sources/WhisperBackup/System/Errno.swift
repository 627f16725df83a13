#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An error number from a failed system call, with the call's name and the path it was given.
public struct Errno: Error, Equatable, CustomStringConvertible, Sendable {
    public var rawValue: CInt
    public var call: String
    public var path: String?

    public init(_ rawValue: CInt, call: String = "", path: String? = nil) {
        self.rawValue = rawValue
        self.call = call
        self.path = path
    }

    public static let noSuchFileOrDirectory = Errno(ENOENT)
    public static let fileExists = Errno(EEXIST)
    public static let wouldBlock = Errno(EWOULDBLOCK)
    public static let interrupted = Errno(EINTR)
    public static let permissionDenied = Errno(EACCES)
    public static let isDirectory = Errno(EISDIR)
    public static let notDirectory = Errno(ENOTDIR)
    public static let noSpace = Errno(ENOSPC)
    public static let brokenPipe = Errno(EPIPE)
    public static let tooManyLinks = Errno(ELOOP)
    public static let invalidArgument = Errno(EINVAL)
    public static let notSupported = Errno(EOPNOTSUPP)
    public static let noSys = Errno(ENOSYS)
    public static let crossDevice = Errno(EXDEV)

    /// Two errnos are equal when their numbers are: `catch Errno.noSuchFileOrDirectory` ignores call and path.
    public static func == (a: Errno, b: Errno) -> Bool { a.rawValue == b.rawValue }
    public static func ~= (pattern: Errno, value: Error) -> Bool {
        (value as? Errno)?.rawValue == pattern.rawValue
    }

    /// The C library's text for the number, e.g. "No such file or directory".
    public var message: String { system_strerror(rawValue) }

    public var description: String {
        var s = call.isEmpty ? "" : "\(call): "
        if let path { s += "\(path): " }
        return s + message
    }
}
